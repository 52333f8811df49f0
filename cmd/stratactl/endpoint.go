package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/urfave/cli"
	client "go.etcd.io/etcd/client/v2"
)

// What etcdctl v2 lacks: `stratactl endpoint status`.

func newEndpointCommand() cli.Command {
	return cli.Command{
		Name:  "endpoint",
		Usage: "endpoint status subcommand",
		Subcommands: []cli.Command{
			{
				Name:      "status",
				Usage:     "print the status of each endpoint in --endpoints",
				ArgsUsage: " ",
				Description: `Asks every endpoint given (the cluster is not synced) for its
   member ID and name, server version, raft state, leader, raft term and
   index and etcd index (from /version, /v2/stats/self and the X-Raft-Term,
   X-Raft-Index and X-Etcd-Index headers of GET /v2/keys/). -o json prints a
   JSON array. Exits 2 if an endpoint could not be asked.`,
				Action: endpointStatus,
			},
		},
	}
}

// endpointState is one endpoint's status.
type endpointState struct {
	Endpoint      string `json:"endpoint"`
	ID            string `json:"id"`
	Name          string `json:"name"`
	ServerVersion string `json:"serverVersion"`
	State         string `json:"state"`
	Leader        string `json:"leader"`
	IsLeader      bool   `json:"isLeader"`
	RaftTerm      uint64 `json:"raftTerm"`
	RaftIndex     uint64 `json:"raftIndex"`
	EtcdIndex     uint64 `json:"etcdIndex"`
}

func endpointStatus(c *cli.Context) error {
	if len(c.Args()) != 0 {
		return failf("No arguments accepted\n")
	}
	eps, err := endpoints(c)
	if err != nil {
		fmt.Fprintln(stderr, err.Error())
		return exit(exitBadArgs)
	}
	if !endpointsGiven(c) {
		// The default list's second entry is etcd's legacy port 4001,
		// which nothing serves nowadays: ask only the first.
		eps = eps[:1]
	}
	tr, err := newTransport(c)
	if err != nil {
		fmt.Fprintln(stderr, err.Error())
		return exit(exitBadArgs)
	}
	if c.GlobalBool("debug") {
		client.EnablecURLDebug()
	}
	var states []endpointState
	failed := false
	for _, ep := range eps {
		hc, err := client.New(client.Config{Transport: tr, Endpoints: []string{ep}, HeaderTimeoutPerRequest: c.GlobalDuration("timeout")})
		if err == nil {
			ctx, cancel := contextWithTotalTimeout(c)
			var st endpointState
			st, err = statusOf(ctx, hc, ep)
			cancel()
			if err == nil {
				states = append(states, st)
				continue
			}
		}
		failed = true
		fmt.Fprintf(stderr, "Failed to get the status of endpoint %s (%v)\n", ep, err)
	}
	if c.GlobalString("output") == "json" {
		b, err := json.Marshal(states)
		if err != nil {
			panic(err) // plain structs always marshal
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		printStatusTable(stdout, states)
	}
	if failed {
		return exit(exitBadConnection)
	}
	return nil
}

// statusOf asks one endpoint.
func statusOf(ctx context.Context, hc client.Client, ep string) (endpointState, error) {
	st := endpointState{Endpoint: ep}
	var version struct {
		Server string `json:"etcdserver"`
	}
	if _, err := getJSON(ctx, hc, "/version", &version); err != nil {
		return st, err
	}
	st.ServerVersion = version.Server
	var self struct {
		Name       string `json:"name"`
		ID         string `json:"id"`
		State      string `json:"state"`
		LeaderInfo struct {
			Leader string `json:"leader"`
		} `json:"leaderInfo"`
	}
	if _, err := getJSON(ctx, hc, "/v2/stats/self", &self); err != nil {
		return st, err
	}
	st.ID, st.Name, st.State, st.Leader = self.ID, self.Name, self.State, self.LeaderInfo.Leader
	st.IsLeader = st.ID != "" && st.ID == st.Leader
	var root json.RawMessage
	h, err := getJSON(ctx, hc, "/v2/keys/", &root)
	if err != nil {
		return st, err
	}
	for _, f := range []struct {
		header string
		v      *uint64
	}{{"X-Raft-Term", &st.RaftTerm}, {"X-Raft-Index", &st.RaftIndex}, {"X-Etcd-Index", &st.EtcdIndex}} {
		s := h.Get(f.header)
		if s == "" {
			continue // a proxy may drop them; 0 then
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return st, fmt.Errorf("GET /v2/keys/: header %s: %w", f.header, err)
		}
		*f.v = n
	}
	return st, nil
}

func printStatusTable(w io.Writer, states []endpointState) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tID\tNAME\tVERSION\tSTATE\tIS LEADER\tRAFT TERM\tRAFT INDEX\tETCD INDEX")
	for _, s := range states {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%d\t%d\t%d\n", s.Endpoint, s.ID, s.Name, s.ServerVersion, s.State, s.IsLeader, s.RaftTerm, s.RaftIndex, s.EtcdIndex)
	}
	tw.Flush()
}
