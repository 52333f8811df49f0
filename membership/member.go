// Package membership holds what a cluster's members are and how members
// describe each other: the Member record, the errors a membership change
// can fail with (etcd's messages), and the peer port's member list format.
// The replicated member table itself lives in server, which applies the
// conf changes; httpd maps these errors to etcd's client API answers.
package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Member describes one cluster member. A member added but not yet started
// has no name and no client URLs.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
}

// JSONURLs returns m's URL lists as etcd's JSON shows them: never null.
func (m Member) JSONURLs() (peer, client []string) {
	peer, client = m.PeerURLs, m.ClientURLs
	if peer == nil {
		peer = []string{}
	}
	if client == nil {
		client = []string{}
	}
	return peer, client
}

// Errors of a membership change, with etcd's messages.
var (
	ErrIDExists      = errors.New("membership: ID exists")
	ErrPeerURLExists = errors.New("membership: peerURL exists")
	ErrNotFound      = errors.New("membership: member not found")
	ErrIDRemoved     = errors.New("membership: ID removed")
)

// peerMember is one entry of the peer port's /members answer: etcd's
// format, with a numeric ID (the client API's is hex).
type peerMember struct {
	ID         uint64   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	Name       string   `json:"name"`
	ClientURLs []string `json:"clientURLs"`
}

// EncodePeerList writes ms as the peer port's /members body.
func EncodePeerList(w io.Writer, ms []Member) error {
	out := make([]peerMember, 0, len(ms))
	for _, m := range ms {
		peer, client := m.JSONURLs()
		out = append(out, peerMember{ID: m.ID, PeerURLs: peer, Name: m.Name, ClientURLs: client})
	}
	return json.NewEncoder(w).Encode(out)
}

// DecodePeerList reads a peer port's /members body, etcd's or Strata's.
func DecodePeerList(r io.Reader) ([]Member, error) {
	var ms []peerMember
	if err := json.NewDecoder(r).Decode(&ms); err != nil {
		return nil, fmt.Errorf("decode member list: %w", err)
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs}
	}
	return out, nil
}
