package server

// FaultFileEnv names an environment variable for tests only: the path of
// a file listing (hex, whitespace-separated) the members this member must
// not exchange raft traffic with. The file is re-read every 20 ms; an
// absent or empty file means no fault. Messages to a listed member are
// dropped before the transport sees them (a snapshot is reported failed),
// and messages from one are dropped when they arrive, while client
// traffic is served as usual: a network partition between members, as
// the linearizability test needs. Only a binary built with -tags failpoints
// reads it; others ignore it.
const FaultFileEnv = "STRATA_TEST_PEER_FAULTS"
