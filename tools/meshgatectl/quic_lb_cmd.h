// `meshgatectl quic-lb encode|decode ...`: builds and decodes QUIC-LB connection IDs offline
// with the same library the agent uses (include/meshgate/quic_lb.h), for checking a config
// against a server's CIDs or a packet capture.
#pragma once

namespace meshgate::ctl {

// Runs the quic-lb subcommand; argv[0] is "quic-lb". Prints the result on stdout and returns
// the exit status: 0 done; 2 bad arguments (the message names the argument) or an
// unroutable CID (the message says why); 1 an internal failure.
int runQuicLbCommand(int argc, char** argv);

}  // namespace meshgate::ctl
