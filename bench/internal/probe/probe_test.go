package probe

import (
	"os"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	in := "Name:\tstrata\nVmPeak:\t  900 kB\nVmHWM:\t    5000 kB\nVmRSS:\t    4096 kB\nRssAnon:\t    1024 kB\nRssFile:\t 3072 kB\n"
	m, err := ParseStatus(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (MemStatus{VmRSS: 4096 << 10, RssAnon: 1024 << 10, VmHWM: 5000 << 10}); m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	for _, bad := range []string{"VmRSS: 1 kB\n", "VmRSS: x kB\nRssAnon: 1 kB\nVmHWM: 1 kB\n", "VmRSS: 1 MB\n"} {
		if _, err := ParseStatus(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// The live process.
	if m, err := ReadMem(os.Getpid()); err != nil || m.VmRSS <= 0 || m.RssAnon <= 0 || m.VmHWM < m.VmRSS {
		t.Errorf("ReadMem(self) = %+v, %v", m, err)
	}
}

func TestParseHeapAlloc(t *testing.T) {
	in := "heap profile: 1: 2 [3: 4] @ heap/1048576\n# runtime.MemStats\n# Alloc = 5\n# TotalAlloc = 9\n# HeapAlloc = 123456\n# HeapSys = 9999\n"
	if got, err := ParseHeapAlloc(strings.NewReader(in)); err != nil || got != 123456 {
		t.Errorf("ParseHeapAlloc = %d, %v; want 123456", got, err)
	}
	if _, err := ParseHeapAlloc(strings.NewReader("# Alloc = 5\n")); err == nil {
		t.Error("no HeapAlloc: no error")
	}
}
