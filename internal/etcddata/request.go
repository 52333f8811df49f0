package etcddata

import "fmt"

// Request is etcdserverpb.Request, the v2 write etcd 3.x proposes: the
// fields its v2 applier reads.
type Request struct {
	Method     string
	Path       string
	Val        string
	Dir        bool
	PrevValue  string
	PrevIndex  uint64
	PrevExist  *bool
	Expiration int64
	Recursive  bool
	Time       int64
	Refresh    bool
}

var v2Methods = map[string]bool{"PUT": true, "POST": true, "DELETE": true, "QGET": true, "SYNC": true, "GET": true, "HEAD": true}

func parseRequest(b []byte) (*Request, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	r := new(Request)
	for _, f := range fs {
		switch f.num {
		case 2:
			r.Method = string(f.bytes)
		case 3:
			r.Path = string(f.bytes)
		case 4:
			r.Val = string(f.bytes)
		case 5:
			r.Dir = f.v != 0
		case 6:
			r.PrevValue = string(f.bytes)
		case 7:
			r.PrevIndex = f.v
		case 8:
			b := f.v != 0
			r.PrevExist = &b
		case 9:
			r.Expiration = int64(f.v)
		case 12:
			r.Recursive = f.v != 0
		case 15:
			r.Time = int64(f.v)
		case 17:
			r.Refresh = f.v != 0
		}
	}
	if !v2Methods[r.Method] {
		return nil, fmt.Errorf("unknown v2 method %q", r.Method)
	}
	return r, nil
}

// decodeEntry tells a normal entry's payload apart as etcd's applier does:
// an InternalRaftRequest (its V2 field, or a v3 request), else a bare v2
// Request. It returns nil, false for a v3 request.
func decodeEntry(data []byte) (req *Request, v3 bool, err error) {
	fs, err := fields(data)
	if err != nil {
		return nil, false, err
	}
	for _, f := range fs {
		if f.num == 2 && f.wire == 2 {
			if r, err := parseRequest(f.bytes); err == nil {
				return r, false, nil // InternalRaftRequest.V2
			}
		}
	}
	if r, err := parseRequest(data); err == nil {
		return r, false, nil
	}
	for _, f := range fs {
		if f.num >= 3 && f.wire == 2 {
			return nil, true, nil
		}
	}
	return nil, false, fmt.Errorf("neither a v2 request nor an internal raft request")
}
