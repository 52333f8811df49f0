package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Scenario is one workload shape, run identically against every server.
type Scenario struct {
	Name       string
	PutPercent int
	Clients    int
}

// ParseScenarios parses a comma-separated list such as "put1,put16,get16,
// mixed20x16". put<N> and get<N> are pure workloads with N clients;
// mixed<P>x<N> issues P% PUTs with N clients.
func ParseScenarios(s string) ([]Scenario, error) {
	var out []Scenario
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		sc := Scenario{Name: f}
		var n string
		var err error
		switch {
		case strings.HasPrefix(f, "put"):
			sc.PutPercent, n = 100, f[3:]
		case strings.HasPrefix(f, "get"):
			sc.PutPercent, n = 0, f[3:]
		case strings.HasPrefix(f, "mixed"):
			p, c, ok := strings.Cut(f[5:], "x")
			if !ok {
				return nil, fmt.Errorf("scenario %q: want mixed<P>x<N>", f)
			}
			if sc.PutPercent, err = strconv.Atoi(p); err != nil || sc.PutPercent < 0 || sc.PutPercent > 100 {
				return nil, fmt.Errorf("scenario %q: bad put percentage", f)
			}
			n = c
		default:
			return nil, fmt.Errorf("scenario %q: want put<N>, get<N> or mixed<P>x<N>", f)
		}
		if sc.Clients, err = strconv.Atoi(n); err != nil || sc.Clients < 1 || sc.Clients > 4096 {
			return nil, fmt.Errorf("scenario %q: bad client count", f)
		}
		out = append(out, sc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenarios in %q", s)
	}
	return out, nil
}

// Describe returns a human label such as "PUT, 16 clients".
func (s Scenario) Describe() string {
	kind := "PUT"
	switch s.PutPercent {
	case 100:
	case 0:
		kind = "GET"
	default:
		kind = fmt.Sprintf("%d%% PUT", s.PutPercent)
	}
	unit := "clients"
	if s.Clients == 1 {
		unit = "client"
	}
	return fmt.Sprintf("%s, %d %s", kind, s.Clients, unit)
}
