package membership

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// The peer list is etcd's byte for byte: numeric IDs, etcd's field order,
// empty lists (not null) for a member that has not started yet.
func TestPeerList(t *testing.T) {
	ms := []Member{
		{ID: 0x8e9e05c52164694d, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}, ClientURLs: []string{"http://127.0.0.1:2379"}},
		{ID: 2},
	}
	var b bytes.Buffer
	if err := EncodePeerList(&b, ms); err != nil {
		t.Fatal(err)
	}
	want := `[{"id":10276657743932975437,"peerURLs":["http://127.0.0.1:2380"],"name":"m1","clientURLs":["http://127.0.0.1:2379"]},{"id":2,"peerURLs":[],"name":"","clientURLs":[]}]` + "\n"
	if b.String() != want {
		t.Fatalf("encoded\n got %s\nwant %s", b.String(), want)
	}
	got, err := DecodePeerList(&b)
	if err != nil {
		t.Fatal(err)
	}
	ms[1].PeerURLs, ms[1].ClientURLs = []string{}, []string{}
	if !reflect.DeepEqual(got, ms) {
		t.Fatalf("decoded %+v, want %+v", got, ms)
	}
	if _, err := DecodePeerList(strings.NewReader(`{"members":[]}`)); err == nil {
		t.Fatal("an object decoded as a member list")
	}
}
