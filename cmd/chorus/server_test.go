package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerSettingsPrecedence: a flag beats its environment variable,
// which beats the config file, which beats the default.
func TestServerSettingsPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"id": 3, "cluster-id": 4, "data-dir": "/from/file", "election-ticks": 7, "bootstrap": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHORUS_CLUSTER_ID", "5")
	t.Setenv("CHORUS_DATA_DIR", "/from/env")
	cmd := newServerCmd()
	if err := cmd.ParseFlags([]string{"--data-dir", "/from/flag", "--config", file}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnvAndFile(cmd.Flags(), file); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"data-dir":        "/from/flag", // flag
		"cluster-id":      "5",          // env over file
		"id":              "3",          // file
		"election-ticks":  "7",          // file
		"bootstrap":       "true",       // file
		"heartbeat-ticks": "1",          // default
	} {
		if got := cmd.Flags().Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}

	t.Setenv("CHORUS_ELECTION_TICKS", "many")
	cmd = newServerCmd()
	if err := applyEnvAndFile(cmd.Flags(), ""); err == nil || !strings.Contains(err.Error(), "CHORUS_ELECTION_TICKS") {
		t.Errorf("a bad environment value: %v, want an error naming CHORUS_ELECTION_TICKS", err)
	}
}

func TestParseMembers(t *testing.T) {
	m, err := parseMembers("peers", "1=a:1, 2=b:2")
	if err != nil || len(m) != 2 || m[2] != "b:2" {
		t.Errorf("parseMembers = %v, %v", m, err)
	}
	for _, bad := range []string{"1", "0=a:1", "x=a:1", "1=", "1=a:1,1=b:2"} {
		if _, err := parseMembers("peers", bad); err == nil || !strings.Contains(err.Error(), "--peers") {
			t.Errorf("parseMembers(%q) = %v, want an error naming --peers", bad, err)
		}
	}
}

func TestServerConfigLimits(t *testing.T) {
	var f serverFlags
	f.keyBytesMax, f.valueBytesMax, f.txnOpsMax, f.bodyBytesMax = 1024, 1<<20, 128, 1<<20
	f.requestTimeout, f.shutdownTimeout = 1, 1
	if _, err := f.serverConfig(); err == nil || !strings.Contains(err.Error(), "--value-bytes-max") {
		t.Errorf("a value limit over the log entry: %v, want an error naming --value-bytes-max", err)
	}
	f.valueBytesMax = 512 << 10
	if _, err := f.serverConfig(); err != nil {
		t.Errorf("the default limits: %v", err)
	}
}
