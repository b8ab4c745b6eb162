#include "tests/lib/process.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

extern char** environ;

namespace meshgate::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<std::string> withNetns(std::vector<std::string> argv, const std::string& netns) {
  if (netns.empty()) {
    return argv;
  }
  std::vector<std::string> full = {"ip", "netns", "exec", netns};
  full.insert(full.end(), std::make_move_iterator(argv.begin()),
              std::make_move_iterator(argv.end()));
  return full;
}

int remainingMs(Clock::time_point end) {
  auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  }
  return "stopped";
}

int exitCode(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

// Spawns argv with stdin from /dev/null, stdout+stderr to out_fd (or inherited if -1),
// no other descriptors of the test leaking into the child.
Result<pid_t> spawnArgv(const std::vector<std::string>& argv, int out_fd) {
  if (argv.empty()) {
    return fail("spawn: empty argv");
  }
  std::vector<char*> cargv;
  for (const std::string& a : argv) {
    cargv.push_back(const_cast<char*>(a.c_str()));
  }
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (out_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  }
  // Sockets, BPF fds and pipes of the test must not keep living in helper processes.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  pid_t pid = -1;
  int err = posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return failErrno("spawn '" + commandLine(argv) + "'", err);
  }
  return pid;
}

// Reaps pid, polling until the deadline. Returns the raw wait status.
Result<int> reapBy(pid_t pid, Clock::time_point end) {
  milliseconds backoff{1};
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return status;
    }
    if (r < 0 && errno != EINTR) {
      return failErrno("waitpid " + std::to_string(pid), errno);
    }
    if (Clock::now() >= end) {
      return fail("process " + std::to_string(pid) + " still running at the deadline");
    }
    std::this_thread::sleep_for(std::min(backoff, milliseconds{remainingMs(end) + 1}));
    backoff = std::min(backoff * 2, milliseconds{50});
  }
}

void killAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

std::string commandLine(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) {
      out += ' ';
    }
    bool quote = a.empty() || a.find_first_of(" \t\n'\"") != std::string::npos;
    out += quote ? "'" + a + "'" : a;
  }
  return out;
}

Result<std::string> runCommand(std::vector<std::string> argv, RunOpts opts) {
  argv = withNetns(std::move(argv), opts.netns);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return failErrno("pipe for '" + commandLine(argv) + "'", errno);
  }
  auto pid = spawnArgv(argv, fds[1]);
  close(fds[1]);
  if (!pid) {
    close(fds[0]);
    return std::unexpected(pid.error());
  }

  const Clock::time_point end = Clock::now() + opts.timeout;
  std::string output;
  char buf[4096];
  bool timed_out = false;
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, remainingMs(end));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == 0) {
      timed_out = true;
      break;
    }
    ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      break;
    }
    output.append(buf, static_cast<size_t>(got));
  }
  close(fds[0]);

  auto status = timed_out ? Result<int>(fail("timeout")) : reapBy(*pid, end);
  if (!status) {
    killAndReap(*pid);
    return fail("'" + commandLine(argv) + "' did not finish within " +
                std::to_string(opts.timeout.count()) + " ms; output: " + output);
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return fail("'" + commandLine(argv) + "' " + describeStatus(*status) + "; output: " + output);
  }
  return output;
}

Result<Subprocess> Subprocess::spawn(std::vector<std::string> argv, SpawnOpts opts) {
  argv = withNetns(std::move(argv), opts.netns);
  int child_out = -1;
  int parent_in = -1;
  if (!opts.output_path.empty()) {
    child_out = open(opts.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (child_out < 0) {
      return failErrno("open '" + opts.output_path + "'", errno);
    }
  } else if (opts.capture_output) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      return failErrno("pipe for '" + commandLine(argv) + "'", errno);
    }
    parent_in = fds[0];
    child_out = fds[1];
  }
  auto pid = spawnArgv(argv, child_out);
  if (child_out >= 0) {
    close(child_out);
  }
  if (!pid) {
    if (parent_in >= 0) {
      close(parent_in);
    }
    return std::unexpected(pid.error());
  }
  return Subprocess(*pid, parent_in, commandLine(argv));
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      exit_code_(std::exchange(other.exit_code_, std::nullopt)),
      out_fd_(std::exchange(other.out_fd_, -1)),
      name_(std::move(other.name_)),
      buffered_(std::move(other.buffered_)) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    exit_code_ = std::exchange(other.exit_code_, std::nullopt);
    out_fd_ = std::exchange(other.out_fd_, -1);
    name_ = std::move(other.name_);
    buffered_ = std::move(other.buffered_);
  }
  return *this;
}

Subprocess::~Subprocess() {
  reset();
}

void Subprocess::reset() {
  if (pid_ > 0 && !exit_code_) {
    killAndReap(pid_);
  }
  pid_ = -1;
  exit_code_.reset();
  if (out_fd_ >= 0) {
    close(out_fd_);
    out_fd_ = -1;
  }
}

bool Subprocess::running() {
  if (pid_ > 0 && !exit_code_) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = exitCode(status);
    }
  }
  return pid_ > 0 && !exit_code_;
}

Result<int> Subprocess::wait() {
  return wait(milliseconds{24L * 3600 * 1000});
}

Result<int> Subprocess::wait(milliseconds deadline) {
  if (exit_code_) {
    return *exit_code_;
  }
  if (pid_ <= 0) {
    return fail("wait '" + name_ + "': no process");
  }
  auto status = reapBy(pid_, Clock::now() + deadline);
  if (!status) {
    return fail("wait '" + name_ + "': " + status.error().message);
  }
  exit_code_ = exitCode(*status);
  return *exit_code_;
}

Result<void> Subprocess::kill(int sig) {
  if (pid_ <= 0 || exit_code_) {
    return fail("kill '" + name_ + "': already exited");
  }
  if (::kill(pid_, sig) != 0) {
    return failErrno("kill '" + name_ + "' (pid " + std::to_string(pid_) + ")", errno);
  }
  return {};
}

Result<std::string> Subprocess::readLine(milliseconds deadline) {
  if (out_fd_ < 0) {
    return fail("readLine '" + name_ + "': output not captured (SpawnOpts.capture_output)");
  }
  const Clock::time_point end = Clock::now() + deadline;
  for (;;) {
    size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    pollfd p{out_fd_, POLLIN, 0};
    int n = poll(&p, 1, remainingMs(end));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == 0) {
      return fail("readLine '" + name_ + "': no line within " + std::to_string(deadline.count()) +
                  " ms; partial output: " + buffered_);
    }
    char buf[4096];
    ssize_t got = read(out_fd_, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return fail("readLine '" + name_ + "': end of output; partial output: " + buffered_);
    }
    buffered_.append(buf, static_cast<size_t>(got));
  }
}

Result<std::string> Subprocess::readAll(milliseconds deadline) {
  if (out_fd_ < 0) {
    return fail("readAll '" + name_ + "': output not captured (SpawnOpts.capture_output)");
  }
  const Clock::time_point end = Clock::now() + deadline;
  for (;;) {
    pollfd p{out_fd_, POLLIN, 0};
    int n = poll(&p, 1, remainingMs(end));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == 0) {
      return fail("readAll '" + name_ + "': output still open after " +
                  std::to_string(deadline.count()) + " ms");
    }
    char buf[4096];
    ssize_t got = read(out_fd_, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return std::exchange(buffered_, {});
    }
    buffered_.append(buf, static_cast<size_t>(got));
  }
}

Result<void> waitFor(std::function<bool()> pred, milliseconds deadline, std::string_view what) {
  const Clock::time_point end = Clock::now() + deadline;
  milliseconds backoff{1};
  for (;;) {
    if (pred()) {
      return {};
    }
    if (Clock::now() >= end) {
      return fail("timed out after " + std::to_string(deadline.count()) + " ms waiting for " +
                  std::string(what));
    }
    std::this_thread::sleep_for(std::min(backoff, milliseconds{remainingMs(end) + 1}));
    backoff = std::min(backoff * 2, milliseconds{50});
  }
}

Result<void> writeTextFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) {
    return fail("cannot write '" + path + "'");
  }
  return {};
}

std::string builtBinary(const std::string& name) {
  // MESHGATE_BIN_DIR first: the sanitizer build of the proxy runs the same tests this way.
  if (const char* dir = std::getenv("MESHGATE_BIN_DIR"); dir && *dir) {
    if (std::filesystem::exists(std::filesystem::path(dir) / name)) {
      return std::filesystem::canonical(std::filesystem::path(dir) / name).string();
    }
  }
  const auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  for (const auto& dir : {exe, exe / ".." / ".." / "bin", exe / ".." / "bin"}) {
    if (std::filesystem::exists(dir / name)) {
      return std::filesystem::canonical(dir / name).string();
    }
  }
  return name;
}

std::string sourceFile(const std::string& rel) {
  auto dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  for (int up = 0; up < 6 && !dir.empty(); up++, dir = dir.parent_path()) {
    if (std::filesystem::exists(dir / rel)) {
      return std::filesystem::canonical(dir / rel).string();
    }
  }
  return rel;
}

}  // namespace meshgate::test
