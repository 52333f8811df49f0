package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/strata-kv/strata/server"
)

// Operations of the linearizability test, on one key each.
const (
	linSet = iota // PUT value
	linGet        // GET quorum=true
	linCAS        // PUT prevValue=prev value
)

type linInput struct {
	Op              int
	Key, Value, Old string
}

// linOutput is what a client saw. Unknown: the outcome of a write is not
// known (timeout, dropped connection, a 5xx that may follow a commit):
// the operation may or may not have taken effect, and is recorded as
// never returning. Reads that fail are not recorded at all.
type linOutput struct {
	OK      bool   // set or CAS applied; get found the key
	Value   string // get: the value read
	Unknown bool
}

// registerModel is a register per key ("" = no such key), partitioned by
// key: set writes it, a quorum get must read it, a compareAndSwap
// succeeds exactly when it holds the expected value.
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(linInput).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(linInput), output.(linOutput)
		switch in.Op {
		case linSet:
			return true, in.Value // an unknown set is linearized last if it never happened
		case linGet:
			if !out.OK {
				return s == "", s
			}
			return out.Value == s, s
		default: // linCAS
			if out.Unknown {
				if s == in.Old {
					return true, in.Value
				}
				return true, s
			}
			if out.OK {
				return s == in.Old, in.Value
			}
			return s != in.Old, s
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		res := "ok"
		switch {
		case out.Unknown:
			res = "unknown"
		case in.Op == linGet && out.OK:
			res = fmt.Sprintf("%q", out.Value)
		case in.Op == linGet:
			res = "not found"
		case !out.OK:
			res = "failed"
		}
		switch in.Op {
		case linSet:
			return fmt.Sprintf("set(%s, %s) -> %s", in.Key, in.Value, res)
		case linGet:
			return fmt.Sprintf("get(%s) -> %s", in.Key, res)
		}
		return fmt.Sprintf("cas(%s, %s -> %s) -> %s", in.Key, in.Old, in.Value, res)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// TestClusterLinearizable: concurrent clients doing set, quorum get and
// compareAndSwap on a few keys through every member of a 3-member cluster,
// while members are killed with SIGKILL and restarted, and cut off from
// their peers (a test-only fault file makes a member drop raft traffic
// to and from the others while it keeps serving clients). Every
// operation is recorded with its invocation and response times and the
// history is checked with porcupine against a register per key. Writes
// whose outcome is unknown are recorded as never returning. On failure
// the history's visualization is written to a temporary file.
// STRATA_LIN_SECONDS sets the fault phase (default 15), and
// STRATA_LIN_BACKENDS=all runs it on every backend (default memory).
func TestClusterLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-process cluster with faults")
	}
	seconds := 15
	if v := os.Getenv("STRATA_LIN_SECONDS"); v != "" {
		fmt.Sscan(v, &seconds)
	}
	bes := []string{"memory"}
	if os.Getenv("STRATA_LIN_BACKENDS") == "all" {
		bes = backendNames()
	}
	for _, be := range bes {
		t.Run(be, func(t *testing.T) { linearizability(t, be, time.Duration(seconds)*time.Second) })
	}
}

func linearizability(t *testing.T, backend string, dur time.Duration) {
	ms := newTestCluster(t, 3, "--backend", backend, "--heartbeat-interval", "50", "--election-timeout", "500",
		"--snapshot-count", "500", "--experimental-snapshot-catchup-entries", "100", "--log-level", "warn")
	faultDir := t.TempDir()
	for _, m := range ms {
		m.env = []string{server.FaultFileEnv + "=" + filepath.Join(faultDir, m.name)}
		m.failpoints = true // peer faults are compiled only into that build
	}
	startAll(t, ms)
	for _, m := range ms {
		if !strings.Contains(m.stderr(), "peer traffic fault injection is enabled") {
			t.Fatalf("%s runs without peer fault injection: the partitions would not happen", m.name)
		}
	}
	for _, m := range ms { // IDs are known once ready
		os.WriteFile(filepath.Join(faultDir, m.name), nil, 0o600)
	}

	keys := []string{"/lin/a", "/lin/b", "/lin/c", "/lin/d"}
	t0 := time.Now()
	now := func() int64 { return time.Since(t0).Nanoseconds() }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		unknown []int // indexes of operations that never returned
		stats   [3][3]int
	)
	const clients = 8
	record := func(client int, in linInput, call int64, out linOutput, kind linKind) {
		mu.Lock()
		defer mu.Unlock()
		stats[in.Op][kind]++
		if kind == linNotDone {
			return
		}
		op := porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: now()}
		if out.Unknown {
			// Never returns: shown apart from its client's later operations.
			op.ClientId = clients + len(unknown)
			unknown = append(unknown, len(history))
		}
		history = append(history, op)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int64
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			// Its own idle connections per member: no reconnect per request.
			hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
			r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := ms[r.IntN(len(ms))]
				in := linInput{Key: keys[r.IntN(len(keys))]}
				switch p := r.IntN(100); {
				case p < 40:
					in.Op = linGet
				case p < 75:
					in.Op = linSet
				default:
					in.Op = linCAS
				}
				if in.Op != linGet {
					in.Value = fmt.Sprintf("v%d", seq.Add(1))
				}
				if in.Op == linCAS {
					// Expect one of the values written lately.
					in.Old = fmt.Sprintf("v%d", max(1, seq.Load()-int64(r.IntN(8))))
				}
				call := now()
				out, kind := linDo(hc, m.clientURL, in)
				if kind == linUnknown {
					out = linOutput{Unknown: true}
				}
				record(c, in, call, out, kind)
				if kind == linNotDone { // a failed read, or a write refused before it was sent
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(c)
	}

	// The nemesis: one fault at a time, leader or any member.
	faults := map[string]int{}
	ids := func() map[*testMember]string {
		out := map[*testMember]string{}
		for _, m := range ms {
			out[m] = m.id
		}
		return out
	}()
	partition := func(victim *testMember, on bool) {
		for _, m := range ms {
			var list []string
			if on && m == victim {
				for _, o := range ms {
					if o != victim {
						list = append(list, ids[o])
					}
				}
			} else if on {
				list = []string{ids[victim]}
			}
			if err := os.WriteFile(filepath.Join(faultDir, m.name), []byte(strings.Join(list, " ")), 0o600); err != nil {
				t.Error(err)
			}
		}
	}
	leaderNow := func() *testMember {
		c := &http.Client{Timeout: 500 * time.Millisecond}
		for _, m := range ms {
			if l, err := leaderOf(c, m); err == nil && l != "" {
				for _, o := range ms {
					if o.id == l {
						return o
					}
				}
			}
		}
		return ms[rand.IntN(len(ms))]
	}
	deadline := time.Now().Add(dur)
	time.Sleep(time.Second)
	for step := 0; time.Now().Before(deadline); step++ {
		// In turn: kill the leader, cut the leader off, kill a random
		// member, cut a random member off.
		victim, who := ms[rand.IntN(len(ms))], "a random member"
		if step%4 < 2 {
			victim, who = leaderNow(), "the leader"
		}
		switch step % 2 {
		case 0:
			kind := "SIGKILL of " + who + ", restarted"
			victim.cmd.Process.Signal(syscall.SIGKILL)
			<-victim.exited
			time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
			ready := victim.start(t)
			select {
			case err := <-ready:
				if err != nil {
					close(stop)
					wg.Wait()
					t.Fatalf("restart %s: %v", victim.name, err)
				}
			case <-time.After(30 * time.Second):
				close(stop)
				wg.Wait()
				t.Fatalf("%s did not restart within 30s", victim.name)
			}
			faults[kind]++
		default:
			partition(victim, true)
			time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
			partition(victim, false)
			faults[who+" cut off from its peers"]++
		}
		time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
	}
	time.Sleep(time.Second) // let the last fault heal under load
	close(stop)
	wg.Wait()

	// An operation whose outcome is unknown may take effect at any time
	// after its call: it never returns.
	end := now()
	for _, i := range unknown {
		history[i].Return = end + int64(time.Hour)
	}
	total := 0
	for _, n := range faults {
		total += n
	}
	t.Logf("%d operations recorded in %v (set %d+%d unknown, get %d, cas %d+%d unknown; %d reads and writes not done); %d faults: %v",
		len(history), dur, stats[linSet][0], stats[linSet][1], stats[linGet][0], stats[linCAS][0], stats[linCAS][1],
		stats[linSet][2]+stats[linGet][2]+stats[linCAS][2], total, faults)
	if stats[linGet][0] < 100 || stats[linSet][0] < 100 || stats[linCAS][0] < 20 {
		t.Fatalf("too few operations completed to check anything: %v", stats)
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, 60*time.Second)
	t.Logf("porcupine: %s in %v", res, time.Since(start).Round(time.Millisecond))
	if res != porcupine.Ok {
		f, err := os.CreateTemp("", "strata-linearizability-*.html")
		if err == nil {
			porcupine.Visualize(registerModel, info, f)
			f.Close()
			t.Fatalf("history of %d operations is %s: visualization in %s", len(history), res, f.Name())
		}
		t.Fatalf("history of %d operations is %s (no visualization: %v)", len(history), res, err)
	}
}

type linKind int

const (
	linDefinite linKind = iota // the answer tells what happened
	linUnknown                 // a write that may or may not have happened
	linNotDone                 // nothing happened (or a read that failed)
)

// linDo performs one operation and classifies its outcome.
func linDo(c *http.Client, base string, in linInput) (linOutput, linKind) {
	var req *http.Request
	switch in.Op {
	case linGet:
		req, _ = http.NewRequest("GET", base+"/v2/keys"+in.Key+"?quorum=true", nil)
	case linSet:
		req, _ = http.NewRequest("PUT", base+"/v2/keys"+in.Key, strings.NewReader(url.Values{"value": {in.Value}}.Encode()))
	case linCAS:
		req, _ = http.NewRequest("PUT", base+"/v2/keys"+in.Key+"?prevValue="+url.QueryEscape(in.Old), strings.NewReader(url.Values{"value": {in.Value}}.Encode()))
	}
	if in.Op != linGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		if in.Op == linGet || errors.Is(err, syscall.ECONNREFUSED) {
			return linOutput{}, linNotDone
		}
		return linOutput{}, linUnknown
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ev struct {
		ErrorCode int `json:"errorCode"`
		Node      struct {
			Value string `json:"value"`
		} `json:"node"`
	}
	if err != nil || json.Unmarshal(b, &ev) != nil {
		if in.Op == linGet {
			return linOutput{}, linNotDone
		}
		return linOutput{}, linUnknown
	}
	switch in.Op {
	case linGet:
		switch {
		case resp.StatusCode == 200:
			return linOutput{OK: true, Value: ev.Node.Value}, linDefinite
		case resp.StatusCode == 404 && ev.ErrorCode == 100:
			return linOutput{}, linDefinite
		}
		return linOutput{}, linNotDone
	case linSet:
		if resp.StatusCode == 200 || resp.StatusCode == 201 {
			return linOutput{OK: true}, linDefinite
		}
	case linCAS:
		switch {
		case resp.StatusCode == 200:
			return linOutput{OK: true}, linDefinite
		case resp.StatusCode == 412 && ev.ErrorCode == 101, resp.StatusCode == 404 && ev.ErrorCode == 100:
			return linOutput{}, linDefinite // compare failed: the key did not hold Old
		}
	}
	return linOutput{}, linUnknown // e.g. 500 "request timed out": may still commit
}
