// Running helper programs from tests: one-shot commands with captured output, long-lived
// child processes owned by RAII, and deadline polling (the only way tests wait).
// Commands are always argv vectors run with posix_spawn, never shell strings.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meshgate/result.h"

namespace meshgate::test {

struct RunOpts {
  // Non-empty: run inside this named network namespace (`ip netns exec NAME ...`).
  std::string netns;
  // The child is killed (SIGKILL) and an error returned when it runs longer than this.
  std::chrono::milliseconds timeout{30000};
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null and returns its stdout and
// stderr interleaved. Exit status != 0, a signal, a timeout or a failed exec is an error
// whose message holds the command line, the status and the output.
Result<std::string> runCommand(std::vector<std::string> argv, RunOpts opts = {});

// The command line as one printable string, arguments with spaces quoted (for messages).
std::string commandLine(const std::vector<std::string>& argv);

struct SpawnOpts {
  // Non-empty: run inside this named network namespace. `ip netns exec` execs the command
  // in place, so pid() is the command's own PID.
  std::string netns;
  // Non-empty: stdout and stderr are appended to this file.
  std::string output_path;
  // true (and output_path empty): stdout and stderr go to a pipe read by readLine().
  bool capture_output = false;
  // Neither: the child inherits the test's stdout/stderr.
};

// A child process owned by the test. Move-only; the destructor SIGKILLs and reaps it if it
// is still running, so a failed assertion never leaves it behind.
class Subprocess {
 public:
  static Result<Subprocess> spawn(std::vector<std::string> argv, SpawnOpts opts = {});

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }                 // also after it exited
  const std::string& name() const { return name_; }  // the command line, for messages
  // False once the child has exited (it is reaped then; wait() still returns its status).
  bool running();

  // Waits for the child to exit: its exit code, or 128 + signal number when it was killed
  // by a signal. With a deadline, an error when the child is still running at the deadline
  // (the child is left running).
  Result<int> wait();
  Result<int> wait(std::chrono::milliseconds deadline);
  // Sends sig to the child (by PID; an error once it has exited and been reaped).
  Result<void> kill(int sig = SIGTERM);

  // With capture_output: the next line the child printed (without '\n'). An error on EOF or
  // when no full line arrives before the deadline. Use it to learn a port a server bound.
  Result<std::string> readLine(std::chrono::milliseconds deadline);
  // With capture_output: everything left until EOF (call after the child exited or closed
  // its output).
  Result<std::string> readAll(std::chrono::milliseconds deadline);

 private:
  Subprocess(pid_t pid, int out_fd, std::string name)
      : pid_(pid), out_fd_(out_fd), name_(std::move(name)) {}
  void reset();

  pid_t pid_ = -1;
  std::optional<int> exit_code_;  // set once reaped: the PID may belong to someone else
  int out_fd_ = -1;
  std::string name_;
  std::string buffered_;  // bytes read from out_fd_ but not yet returned
};

// Creates or truncates `path` and writes `text`; the error names the file.
Result<void> writeTextFile(const std::string& path, const std::string& text);

// Path of a binary built next to the tests (build/bin/NAME), or NAME (looked up in PATH).
// $MESHGATE_BIN_DIR/NAME wins when it exists (the sanitizer build of meshgate-proxy).
std::string builtBinary(const std::string& name);

// Path of a file of the source tree (e.g. "tests/integration/h2/h2_probe.py"), found by
// walking up from the test binary (build/tests/...); `rel` itself when not found.
std::string sourceFile(const std::string& rel);

// Polls pred with a short backoff (1 ms doubling up to 50 ms) until it returns true or the
// deadline passes; the error names `what`: "timed out after 2000 ms waiting for <what>".
// This is how tests synchronise: poll a counter or a state, never sleep and hope.
Result<void> waitFor(std::function<bool()> pred, std::chrono::milliseconds deadline,
                     std::string_view what);

}  // namespace meshgate::test
