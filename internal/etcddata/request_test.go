package etcddata

import (
	"testing"

	"github.com/strata-kv/strata/auth"
	"github.com/strata-kv/strata/engine"
)

func TestRequestCommand(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name string
		r    Request
		want engine.Command
		ok   bool
	}{
		{"set", Request{Method: "PUT", Path: "/1/a", Val: "v"}, engine.Command{Op: engine.OpSet, Path: "/a", Value: "v"}, true},
		{"update", Request{Method: "PUT", Path: "/1/a", Val: "v", PrevExist: &yes}, engine.Command{Op: engine.OpUpdate, Path: "/a", Value: "v"}, true},
		{"cas prevExist", Request{Method: "PUT", Path: "/1/a", PrevExist: &yes, PrevIndex: 3}, engine.Command{Op: engine.OpCAS, Path: "/a", PrevIndex: 3}, true},
		{"create", Request{Method: "PUT", Path: "/1/a", PrevExist: &no, Dir: true}, engine.Command{Op: engine.OpCreate, Path: "/a", Dir: true}, true},
		{"cas", Request{Method: "PUT", Path: "/1/a", PrevValue: "x", Expiration: 5e18}, engine.Command{Op: engine.OpCAS, Path: "/a", PrevValue: "x", Expiration: 5e18}, true},
		{"refresh", Request{Method: "PUT", Path: "/1/a", PrevExist: &yes, Refresh: true, Expiration: 5e18}, engine.Command{Op: engine.OpUpdate, Path: "/a", Refresh: true, Expiration: 5e18}, true},
		{"post", Request{Method: "POST", Path: "/1/q", Val: "j"}, engine.Command{Op: engine.OpCreate, Unique: true, Path: "/q", Value: "j"}, true},
		{"delete", Request{Method: "DELETE", Path: "/1/d", Dir: true, Recursive: true}, engine.Command{Op: engine.OpDelete, Path: "/d", Dir: true, Recursive: true}, true},
		{"cad", Request{Method: "DELETE", Path: "/1/a", PrevIndex: 9}, engine.Command{Op: engine.OpCAD, Path: "/a", PrevIndex: 9}, true},
		{"sync", Request{Method: "SYNC", Time: 42}, engine.Command{Op: engine.OpExpire, Path: "/", Time: 42}, true},
		{"qget", Request{Method: "QGET", Path: "/1/a"}, engine.Command{}, false},
		{"auth user", Request{Method: "PUT", Path: "/2/users/alice", Val: "{}"}, engine.Command{Op: engine.OpSet, Path: auth.UserPath("alice"), Value: "{}"}, true},
		{"membership", Request{Method: "PUT", Path: "/0/members/8e9e05c52164694d/attributes", Val: "{}"}, engine.Command{Op: engine.OpSet, Path: dropDir + "/0/members/8e9e05c52164694d/attributes", Value: "{}"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := requestCommand(&tc.r)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// A bare etcdserverpb.Request and one wrapped in InternalRaftRequest.V2
// decode to the same request; a v3 put is recognised as v3.
func TestDecodeEntry(t *testing.T) {
	req := appendField(nil, 1, 0)
	req = append(req, 7)
	req = appendBytes(req, 2, []byte("PUT"))
	req = appendBytes(req, 3, []byte("/1/a"))
	req = appendBytes(req, 4, []byte("v"))
	wrapped := appendField(nil, 1, 0)
	wrapped = append(wrapped, 7)
	wrapped = appendBytes(wrapped, 2, req)
	v3put := appendField(nil, 1, 0)
	v3put = append(v3put, 7)
	v3put = appendBytes(v3put, 4, appendBytes(nil, 1, []byte("key")))
	for _, tc := range []struct {
		name string
		data []byte
		v3   bool
	}{{"bare", req, false}, {"wrapped", wrapped, false}, {"v3 put", v3put, true}} {
		r, v3, err := decodeEntry(tc.data)
		if err != nil || v3 != tc.v3 {
			t.Errorf("%s: %+v v3=%v err=%v", tc.name, r, v3, err)
			continue
		}
		if !tc.v3 && (r.Method != "PUT" || r.Path != "/1/a" || r.Val != "v") {
			t.Errorf("%s: decoded %+v", tc.name, r)
		}
	}
	if _, _, err := decodeEntry([]byte{0xff}); err == nil {
		t.Error("garbage decoded without error")
	}
}
