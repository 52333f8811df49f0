package engine

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func sampleEvent(key, value string, ttl int64, nodes int) *Event {
	exp := time.Date(2026, 11, 21, 1, 2, 3, 4500, time.UTC)
	v := value
	n := &Node{Key: key, Value: &v, Expiration: &exp, TTL: ttl, ModifiedIndex: 7, CreatedIndex: 3}
	for i := 0; i < nodes; i++ {
		cv := value + "x"
		n.Nodes = append(n.Nodes, &Node{Key: key + "/c", Value: &cv, Dir: i%2 == 0, ModifiedIndex: uint64(i + 1)})
	}
	return &Event{Action: "compareAndSwap", Node: n, PrevNode: &Node{Key: key, Dir: true}}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, ev := range []*Event{
		sampleEvent("/a", "b", 30, 0),
		sampleEvent("/k<&>", "tab\there \"q\" back\\ <b>&amp;</b> \u2028\u2029 \x00\x1f\x7f ünï 🚀 \xff\xfe", -1, 3),
		{Action: "get", Node: &Node{Dir: true}},
		{Action: "set"},
		{Action: "get", Node: &Node{Dir: true, Nodes: []*Node{}}},
	} {
		want, _ := json.Marshal(ev)
		if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("/a", "value", int64(5))
	f.Add("/\xff<", "\u2028&\x01", int64(-3))
	f.Fuzz(func(t *testing.T, key, value string, ttl int64) {
		ev := sampleEvent(key, value, ttl, 2)
		want, _ := json.Marshal(ev)
		if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkEventJSON(b *testing.B) {
	ev := sampleEvent("/bench/k123", "0123456789abcdef0123456789abcdef", 0, 0)
	ev.Node.Expiration = nil
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			json.Marshal(ev)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for i := 0; i < b.N; i++ {
			buf = ev.AppendJSON(buf[:0])
		}
	})
}
