package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MemberMemory is one server process's memory as /proc reports it.
type MemberMemory struct {
	Member  string `json:"member"` // pid file name without ".pid", e.g. "m1"
	PID     int    `json:"pid"`
	RSSKiB  int64  `json:"rss_kib"` // VmRSS: resident now
	HWMKiB  int64  `json:"hwm_kib"` // VmHWM: peak resident
	DataKiB int64  `json:"data_dir_kib,omitempty"`
}

// pidFilesMax bounds how many pid files one directory may list.
const pidFilesMax = 64

// PIDFiles returns the members whose pid files (NAME.pid) are in dir, sorted
// by name. The cluster scripts write DIR/m1.pid, DIR/m2.pid, ...
func PIDFiles(dir string) ([]MemberMemory, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return nil, fmt.Errorf("%w: pid dir %q: %w", ErrBadConfig, dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: pid dir %q has no *.pid files", ErrBadConfig, dir)
	}
	if len(paths) > pidFilesMax {
		return nil, fmt.Errorf("%w: pid dir %q has %d pid files (max %d)", ErrBadConfig, dir, len(paths), pidFilesMax)
	}
	sort.Strings(paths)
	var ms []MemberMemory
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("bench: read pid file: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid < 1 {
			return nil, fmt.Errorf("%w: pid file %q holds %q, not a pid", ErrBadConfig, p, bytes.TrimSpace(b))
		}
		ms = append(ms, MemberMemory{Member: strings.TrimSuffix(filepath.Base(p), ".pid"), PID: pid})
	}
	return ms, nil
}

// ReadRSS fills RSSKiB and HWMKiB of every member from /proc/PID/status.
func ReadRSS(ms []MemberMemory) error {
	for i := range ms {
		rss, hwm, err := procStatus(ms[i].PID)
		if err != nil {
			return err
		}
		ms[i].RSSKiB, ms[i].HWMKiB = rss, hwm
	}
	return nil
}

// procStatus returns VmRSS and VmHWM (KiB) of pid.
func procStatus(pid int) (rssKiB, hwmKiB int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: process %d: %w", pid, err)
	}
	defer f.Close()
	return parseStatus(f, pid)
}

func parseStatus(f io.Reader, pid int) (rssKiB, hwmKiB int64, err error) {
	sc := bufio.NewScanner(f)
	found := 0
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("bench: /proc/%d/status: malformed %s line %q", pid, name, sc.Text())
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bench: /proc/%d/status: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			rssKiB = v
		} else {
			hwmKiB = v
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("bench: /proc/%d/status: %w", pid, err)
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("bench: /proc/%d/status: no VmRSS/VmHWM (a kernel thread or zombie?)", pid)
	}
	return rssKiB, hwmKiB, nil
}

// DirKiB returns the disk usage of the files under dir (apparent sizes), in
// KiB, or 0 when dir is empty or unreadable.
func DirKiB(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts are skipped; this is a report, not a check
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total / 1024
}

// clockTicksPerSecond is USER_HZ, the unit of /proc/PID/stat times; it is
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicksPerSecond = 100

// CPUTime returns the user plus system CPU time pid has used so far, from
// /proc/PID/stat (pid 0: this process).
func CPUTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: cpu time: %w", err)
	}
	return parseStat(string(b), path)
}

// parseStat reads utime and stime (fields 14 and 15) of a /proc/PID/stat
// line; the command name (field 2) may hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(s, path string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: %s: no ')' in %q", path, s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: %s: %d fields after the name, want at least 13", path, len(f))
	}
	var ticks int64
	for _, field := range f[11:13] {
		v, err := strconv.ParseInt(field, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("bench: %s: cpu time %q is not a count", path, field)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}

// CPUMeter measures the cores a set of processes and this one use between
// Start and Stop.
type CPUMeter struct {
	pids     []int
	t0       time.Time
	servers0 time.Duration
	self0    time.Duration
}

// NewCPUMeter meters the server processes pids (may be empty) and this process.
func NewCPUMeter(pids []int) *CPUMeter { return &CPUMeter{pids: pids} }

func (m *CPUMeter) read() (servers, self time.Duration, err error) {
	for _, p := range m.pids {
		d, err := CPUTime(p)
		if err != nil {
			return 0, 0, err
		}
		servers += d
	}
	self, err = CPUTime(0)
	return servers, self, err
}

// Start takes the first reading.
func (m *CPUMeter) Start() error {
	var err error
	m.t0 = time.Now()
	m.servers0, m.self0, err = m.read()
	return err
}

// Stop returns the average cores used since Start by the servers (summed)
// and by this process.
func (m *CPUMeter) Stop() (serverCores, selfCores float64, err error) {
	s, self, err := m.read()
	if err != nil {
		return 0, 0, err
	}
	el := time.Since(m.t0).Seconds()
	if el <= 0 {
		return 0, 0, nil
	}
	return (s - m.servers0).Seconds() / el, (self - m.self0).Seconds() / el, nil
}
