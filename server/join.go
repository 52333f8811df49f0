package server

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/membership"
)

// joinExisting starts a member with --initial-cluster-state existing and
// an empty data dir: it asks the running members listed in
// --initial-cluster for the member list (their peer port's /members, as
// etcd does), finds itself by its advertised peer URLs (it must have been
// added with POST /v2/members first), and takes the ID the cluster gave
// it and the cluster's ID. It records both in the data dir, marked as
// joined, and returns the members as raft peers; raft is then started
// without bootstrapping and the leader sends it the log or a snapshot.
func (s *Server) joinExisting() ([]consensus.Peer, error) {
	cfg := &s.cfg
	names := make([]string, 0, len(cfg.InitialPeers))
	for name := range cfg.InitialPeers {
		names = append(names, name)
	}
	sort.Strings(names)
	c := &http.Client{Timeout: 2 * time.Second}
	if cfg.PeerTLS != nil { // https peer URLs: the member's peer certificate and CAs
		c.Transport = &http.Transport{TLSClientConfig: cfg.PeerTLS.Clone()}
	}
	var errs []error
	for _, name := range names {
		urls := cfg.InitialPeers[name]
		if sameURLs(urls, cfg.PeerURLs) {
			continue
		}
		for _, u := range urls {
			ms, cid, err := fetchPeerMembers(c, u)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var self *membership.Member
			for i := range ms {
				if sameURLs(ms[i].PeerURLs, cfg.PeerURLs) {
					self = &ms[i]
				}
			}
			if self == nil {
				return nil, fmt.Errorf("--initial-cluster-state=existing: the running cluster (asked at %s) has no member with peer URLs %v: add this member first (POST /v2/members with these peer URLs), then start it", u, cfg.PeerURLs)
			}
			self.Name, self.ClientURLs = cfg.Name, cfg.ClientURLs
			s.id, s.clusterID, s.join = self.ID, cid, true
			s.leader.enabled = true
			s.members.fallback = ms
			var peers []consensus.Peer
			for _, m := range ms {
				peers = append(peers, consensus.Peer{ID: m.ID, URLs: m.PeerURLs})
			}
			if err := s.dir.writeIdentity(identity{cluster: cid, member: s.id, joined: true}); err != nil {
				return nil, err
			}
			s.log.Info("joining a running cluster", "cluster", fmt.Sprintf("%x", cid), "member", fmt.Sprintf("%x", s.id), "asked", u)
			return peers, nil
		}
	}
	return nil, fmt.Errorf("--initial-cluster-state=existing: no other member of --initial-cluster answered on its peer URLs: %w", errors.Join(errs...))
}

// fetchPeerMembers reads a member's peer port /members (etcd's format)
// and the cluster ID it reports.
func fetchPeerMembers(c *http.Client, peerURL string) ([]membership.Member, uint64, error) {
	resp, err := c.Get(peerURL + "/members")
	if err != nil {
		return nil, 0, fmt.Errorf("ask %s for the member list: %w", peerURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("ask %s for the member list: %s", peerURL, resp.Status)
	}
	ms, err := membership.DecodePeerList(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("member list from %s: %w", peerURL, err)
	}
	cid, err := strconv.ParseUint(resp.Header.Get("X-Etcd-Cluster-ID"), 16, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("member list from %s: no valid X-Etcd-Cluster-ID", peerURL)
	}
	return ms, cid, nil
}

func sameURLs(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, ",") == strings.Join(b, ",")
}
