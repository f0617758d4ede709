package bench

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	status := "Name:\tetcd\nVmPeak:\t 999 kB\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatus(strings.NewReader(status), 1)
	if err != nil || rss != 10240 || hwm != 20480 {
		t.Fatalf("parseStatus = %d, %d, %v; want 10240, 20480, nil", rss, hwm, err)
	}
	for _, bad := range []string{
		"Name:\tkthread\n",             // no Vm lines
		"VmHWM:\t1 kB\nVmRSS:\tx kB\n", // not a number
		"VmHWM:\t1 kB\nVmRSS:\t1 MB\n", // unexpected unit
	} {
		if _, _, err := parseStatus(strings.NewReader(bad), 1); err == nil {
			t.Errorf("parseStatus(%q) accepted", bad)
		}
	}
}

// TestOwnRSS reads this test process's own status: RSS is positive and at
// most the peak.
func TestOwnRSS(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m1.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := PIDFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ReadRSS(ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Member != "m1" || ms[0].PID != os.Getpid() || ms[0].RSSKiB <= 0 || ms[0].RSSKiB > ms[0].HWMKiB {
		t.Fatalf("members = %+v", ms)
	}
}

func TestPIDFilesErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := PIDFiles(empty); !errors.Is(err, ErrBadConfig) {
		t.Errorf("PIDFiles(empty dir) = %v, want ErrBadConfig", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "m1.pid"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PIDFiles(bad); !errors.Is(err, ErrBadConfig) {
		t.Errorf("PIDFiles(garbage) = %v, want ErrBadConfig", err)
	}
}

func TestParseStat(t *testing.T) {
	// A real line shape: the name holds a space and a ')'.
	line := "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 1000 200 18446744073709551615\n"
	d, err := parseStat(line, "test")
	if err != nil || d != 3*time.Second {
		t.Fatalf("parseStat = %v, %v; want 3s (300 ticks)", d, err)
	}
	for _, bad := range []string{"1234 no paren", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 5 0"} {
		if _, err := parseStat(bad, "test"); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestCPUMeterSelf(t *testing.T) {
	m := NewCPUMeter([]int{os.Getpid()})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	// Burn CPU until this process's own clock shows at least 50 ms used.
	start, _ := CPUTime(0)
	x := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for i := range 1_000_000 {
			x ^= i
		}
		if d, _ := CPUTime(0); d-start >= 50*time.Millisecond {
			break
		}
	}
	srv, self, err := m.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if self <= 0 || srv <= 0 || srv > 2*float64(runtimeCPUs()) {
		t.Fatalf("cores: server %v self %v (x=%d)", srv, self, x)
	}
}

func runtimeCPUs() int { return runtime.NumCPU() }
