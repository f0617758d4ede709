package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.clients) != 3 || o.clients[2] != 256 || len(o.workloads) != 3 || o.keys != 100000 || o.valueBytes != 256 || o.keyBytes != 16 {
		t.Fatalf("defaults = %+v", o)
	}
}

func TestParseFlagsEndpointsPerSystem(t *testing.T) {
	o, err := parseFlags([]string{"--system", "chorus", "--endpoints", "h:1"}, io.Discard)
	if err != nil || o.chorusEndpoints != "h:1" || o.etcdEndpoints != defaultEtcdEndpoints {
		t.Fatalf("got %+v, %v", o, err)
	}
}

// TestParseFlagsBad: every bad flag is refused with its name in the message.
func TestParseFlagsBad(t *testing.T) {
	for _, c := range []struct {
		args []string
		name string
	}{
		{[]string{"--system", "redis"}, "--system"},
		{[]string{"--system", "etcd,etcd"}, "--system"},
		{[]string{"--system", ""}, "--system"},
		{[]string{"--system", "etcd,chorus", "--endpoints", "h:1"}, "--endpoints"},
		{[]string{"--clients", "1,x"}, "--clients"},
		{[]string{"--clients", "0"}, "--clients"},
		{[]string{"--workload", "scan"}, "--workload"},
		{[]string{"--keys", "0"}, "--keys"},
		{[]string{"--keys", "1000", "--key-bytes", "3"}, "--keys"},
		{[]string{"--value-bytes", "0"}, "value-bytes"},
		{[]string{"--duration", "0s"}, "duration"},
		{[]string{"--mode", "soak"}, "--mode"},
		{[]string{"--mode", "memory", "--system", "etcd"}, "--etcd-pid-dir"},
		{[]string{"--pid-dir", "/x", "--system", "etcd,chorus"}, "--pid-dir"},
		{[]string{"--settle", "-1s"}, "--settle"},
		{[]string{"extra"}, "extra"},
	} {
		_, err := parseFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%q: err = %v, want one naming %q", c.args, err, c.name)
		}
	}
}
