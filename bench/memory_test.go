package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
