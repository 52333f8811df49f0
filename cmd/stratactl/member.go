package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/urfave/cli"
	client "go.etcd.io/etcd/client/v2"
)

func newMemberCommand() cli.Command {
	return cli.Command{
		Name:  "member",
		Usage: "member add, remove and list subcommands",
		Subcommands: []cli.Command{
			{Name: "list", Usage: "enumerate existing cluster members", ArgsUsage: " ", Action: memberList},
			{Name: "add", Usage: "add a new member to the etcd cluster", ArgsUsage: "<name> <peerURL>", Action: memberAdd},
			{Name: "remove", Usage: "remove an existing member from the etcd cluster", ArgsUsage: "<memberID>", Action: memberRemove},
			{Name: "update", Usage: "update an existing member in the etcd cluster", ArgsUsage: "<memberID> <peerURLs>", Action: memberUpdate},
		},
	}
}

func mustNewMembersAPI(c *cli.Context) (client.MembersAPI, client.Client, error) {
	hc, err := mustNewClient(c)
	if err != nil {
		return nil, nil, err
	}
	return client.NewMembersAPI(hc), hc, nil
}

// getAction is a GET of a path on whichever endpoint the client picks; it
// satisfies the client's (unexported) request interface.
type getAction struct{ path string }

func (a getAction) HTTPRequest(ep url.URL) *http.Request {
	u := ep
	u.Path = a.path
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil) // a url.URL always forms a valid request
	return req
}

// getJSON GETs path through the client and decodes the JSON answer into v.
func getJSON(ctx context.Context, hc client.Client, path string, v any) (http.Header, error) {
	resp, body, err := hc.Do(ctx, getAction{path: path})
	if err != nil {
		var cerr *client.ClusterError
		if errors.As(err, &cerr) && len(cerr.Errors) == 1 {
			err = cerr.Errors[0] // one endpoint: its error alone, not the multi-line list
		}
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: unexpected status code %d", path, resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return resp.Header, nil
}

// leaderID is the leader's member ID from /v2/members/leader or, where the
// server has no such endpoint (Strata), from the leaderInfo of
// /v2/stats/self, which both serve.
func leaderID(ctx context.Context, mAPI client.MembersAPI, hc client.Client) (string, error) {
	leader, err := mAPI.Leader(ctx)
	if err == nil {
		return leader.ID, nil
	}
	if err.Error() != fmt.Sprintf("unexpected status code %d", http.StatusNotFound) {
		return "", err
	}
	var self struct {
		LeaderInfo struct {
			Leader string `json:"leader"`
		} `json:"leaderInfo"`
	}
	if _, serr := getJSON(ctx, hc, "/v2/stats/self", &self); serr != nil {
		return "", err // the original error is the one etcdctl would print
	}
	return self.LeaderInfo.Leader, nil
}

func memberList(c *cli.Context) error {
	if len(c.Args()) != 0 {
		return failf("No arguments accepted\n")
	}
	mAPI, hc, err := mustNewMembersAPI(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	members, err := mAPI.List(ctx)
	if err != nil {
		return failf("%s\n", err.Error())
	}
	leader, err := leaderID(ctx, mAPI, hc)
	if err != nil {
		return failf("Failed to get leader:  %v\n", err)
	}
	for _, m := range members {
		if len(m.Name) == 0 {
			fmt.Fprintf(stdout, "%s[unstarted]: peerURLs=%s\n", m.ID, strings.Join(m.PeerURLs, ","))
		} else {
			fmt.Fprintf(stdout, "%s: name=%s peerURLs=%s clientURLs=%s isLeader=%v\n", m.ID, m.Name, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), m.ID == leader)
		}
	}
	return nil
}

// membersAPIFor checks that c has n arguments (else fails with usage)
// and connects the members API.
func membersAPIFor(c *cli.Context, n int, usage string) (client.MembersAPI, cli.Args, error) {
	args := c.Args()
	if len(args) != n {
		return nil, nil, failf("%s", usage)
	}
	mAPI, _, err := mustNewMembersAPI(c)
	return mAPI, args, err
}

func memberAdd(c *cli.Context) error {
	mAPI, args, err := membersAPIFor(c, 2, "Provide a name and a single member peerURL\n")
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	m, err := mAPI.Add(ctx, args[1])
	if err != nil {
		return failf("%s\n", err.Error())
	}
	newID, newName := m.ID, args[0]
	fmt.Fprintf(stdout, "Added member named %s with ID %s to cluster\n", newName, newID)

	members, err := mAPI.List(ctx)
	if err != nil {
		return failf("%s\n", err.Error())
	}
	var conf []string
	for _, memb := range members {
		for _, u := range memb.PeerURLs {
			n := memb.Name
			if memb.ID == newID {
				n = newName
			}
			conf = append(conf, fmt.Sprintf("%s=%s", n, u))
		}
	}
	fmt.Fprint(stdout, "\n")
	fmt.Fprintf(stdout, "ETCD_NAME=%q\n", newName)
	fmt.Fprintf(stdout, "ETCD_INITIAL_CLUSTER=%q\n", strings.Join(conf, ","))
	fmt.Fprintf(stdout, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n")
	return nil
}

func memberRemove(c *cli.Context) error {
	mAPI, args, err := membersAPIFor(c, 1, "Provide a single member ID\n")
	if err != nil {
		return err
	}
	removalID := args[0]
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	members, err := mAPI.List(ctx)
	if err != nil {
		return failf("Error while verifying ID against known members: %s\n", err.Error())
	}
	foundID := false
	for _, m := range members {
		if m.ID == removalID {
			foundID = true
		}
		if m.Name == removalID {
			// A name is not an ID, even when it is unambiguous.
			fmt.Fprintf(stderr, "Found a member named %s; if this is correct, please use its ID, eg:\n\t%s member remove %s\n", m.Name, progName, m.ID)
			fmt.Fprintf(stderr, "For more details, read the documentation at https://github.com/etcd-io/etcd/blob/master/Documentation/runtime-configuration.md#remove-a-member\n\n")
		}
	}
	if !foundID {
		return failf("Couldn't find a member in the cluster with an ID of %s.\n", removalID)
	}
	if err := mAPI.Remove(ctx, removalID); err != nil {
		return failf("Received an error trying to remove member %s: %s", removalID, err.Error())
	}
	fmt.Fprintf(stdout, "Removed member %s from cluster\n", removalID)
	return nil
}

func memberUpdate(c *cli.Context) error {
	mAPI, args, err := membersAPIFor(c, 2, "Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)\n")
	if err != nil {
		return err
	}
	mid, urls := args[0], args[1]
	ctx, cancel := contextWithTotalTimeout(c)
	err = mAPI.Update(ctx, mid, strings.Split(urls, ","))
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "Updated member with ID %s in cluster\n", mid)
	return nil
}

func newClusterHealthCommand() cli.Command {
	return cli.Command{
		Name:      "cluster-health",
		Usage:     "check the health of the etcd cluster",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			cli.BoolFlag{Name: "forever, f", Usage: "forever check the health every 10 second until CTRL+C"},
		},
		Action: clusterHealth,
	}
}

// clusterHealth asks every member's client URLs for /health until one
// answers, and sums up: exit 0 if all members are healthy, 5 otherwise.
func clusterHealth(c *cli.Context) error {
	forever := c.Bool("forever")
	if forever {
		sigch := make(chan os.Signal, 1)
		signal.Notify(sigch, os.Interrupt)
		go func() {
			<-sigch
			os.Exit(exitSuccess)
		}()
	}
	tr, err := newTransport(c)
	if err != nil {
		return handleError(c, exitServerError, err)
	}
	hc := http.Client{Transport: tr}
	cln, err := mustNewClientNoSync(c)
	if err != nil {
		return err
	}
	ms, err := client.NewMembersAPI(cln).List(context.TODO())
	if err != nil {
		fmt.Fprintln(stdout, "cluster may be unhealthy: failed to list members")
		return handleError(c, exitServerError, err)
	}
	for {
		healthy := 0
		for _, m := range ms {
			if len(m.ClientURLs) == 0 {
				fmt.Fprintf(stdout, "member %s is unreachable: no available published client urls\n", m.ID)
				continue
			}
			checked := false
			for _, u := range m.ClientURLs {
				ok, err := memberHealthy(&hc, u)
				if err != nil {
					fmt.Fprintf(stdout, "failed to check the health of member %s on %s: %v\n", m.ID, u, err)
					continue
				}
				checked = true
				if ok {
					fmt.Fprintf(stdout, "member %s is healthy: got healthy result from %s\n", m.ID, u)
					healthy++
				} else {
					fmt.Fprintf(stdout, "member %s is unhealthy: got unhealthy result from %s\n", m.ID, u)
				}
				break
			}
			if !checked {
				fmt.Fprintf(stdout, "member %s is unreachable: %v are all unreachable\n", m.ID, m.ClientURLs)
			}
		}
		switch healthy {
		case len(ms):
			fmt.Fprintln(stdout, "cluster is healthy")
		case 0:
			fmt.Fprintln(stdout, "cluster is unavailable")
		default:
			fmt.Fprintln(stdout, "cluster is degraded")
		}
		if !forever {
			if healthy == len(ms) {
				return nil
			}
			return exit(exitClusterNotHealthy)
		}
		fmt.Fprintf(stdout, "\nnext check after 10 second...\n\n")
		time.Sleep(10 * time.Second)
	}
}

// memberHealthy GETs u/health; {"health":"true"} (or a boolean true) is
// healthy. The errors are printed as etcdctl prints them, so they are not
// wrapped.
func memberHealthy(hc *http.Client, u string) (bool, error) {
	resp, err := hc.Get(u + "/health")
	if err != nil {
		return false, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	result := struct{ Health string }{}
	nresult := struct{ Health bool }{}
	err = json.Unmarshal(b, &result)
	if err != nil {
		err = json.Unmarshal(b, &nresult)
	}
	if err != nil {
		return false, err
	}
	return result.Health == "true" || nresult.Health, nil
}
