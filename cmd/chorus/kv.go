package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/client"
)

// clientFlags are the flags of every command that talks to a cluster.
type clientFlags struct {
	endpoints string
	output    string
	timeout   time.Duration
}

// addClientFlags adds --endpoints, --output and --timeout to cmd and its
// subcommands.
func addClientFlags(cmd *cobra.Command, f *clientFlags) {
	def := os.Getenv("CHORUS_ENDPOINTS")
	if def == "" {
		def = defaultHTTPAddr
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.endpoints, "endpoints", def, "comma-separated HTTP addresses of members (env CHORUS_ENDPOINTS)")
	pf.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&f.timeout, "timeout", 10*time.Second, "bound on the command, retries included")
}

// open checks the flags and returns a client and a context bounded by
// --timeout.
func (f *clientFlags) open(cmd *cobra.Command, outputs ...string) (*client.Client, context.Context, context.CancelFunc, error) {
	allowed := append([]string{"table", "json"}, outputs...)
	ok := false
	for _, o := range allowed {
		ok = ok || o == f.output
	}
	if !ok {
		return nil, nil, nil, usageError{fmt.Errorf("--output %q: want %s", f.output, strings.Join(allowed, ", "))}
	}
	if f.timeout <= 0 {
		return nil, nil, nil, usageError{fmt.Errorf("--timeout %v must be positive", f.timeout)}
	}
	var eps []string
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	c, err := client.New(client.Config{Endpoints: eps, Timeout: f.timeout})
	if err != nil {
		return nil, nil, nil, usageError{fmt.Errorf("--endpoints: %w", err)}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	return c, ctx, cancel, nil
}

// apiErr gives a client error its exit code.
func apiErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNotFound):
		return codedError{exitNotFound, err}
	case errors.Is(err, client.ErrCompareFailed):
		return codedError{exitCompareFailed, err}
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// show renders bytes for a table: as they are when printable UTF-8, else
// quoted Go-style.
func show(b []byte) string {
	if utf8.Valid(b) && strings.IndexFunc(string(b), func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return string(b)
	}
	return strconv.Quote(string(b))
}

func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func kvRows(kvs []client.KeyValue) [][]string {
	rows := make([][]string, len(kvs))
	for i, k := range kvs {
		rows[i] = []string{show(k.Key), show(k.Value), strconv.FormatUint(k.Version, 10),
			strconv.FormatUint(k.CreateIndex, 10), strconv.FormatUint(k.ModIndex, 10)}
	}
	return rows
}

const kvHeader = "KEY\tVALUE\tVERSION\tCREATE_INDEX\tMOD_INDEX"

// exactArgs is cobra.ExactArgs with the error marked as a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func newKVCmd() *cobra.Command {
	var (
		f  clientFlags
		ns string
	)
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Read and write keys of a namespace",
		Long: `kv reads and writes the keys of one namespace (--ns, or CHORUS_NS).
Exit codes: 0 ok, 1 error, 2 usage, 3 namespace or key not found, 4 txn compare failed.`,
	}
	addClientFlags(cmd, &f)
	defNS := os.Getenv("CHORUS_NS")
	cmd.PersistentFlags().StringVarP(&ns, "ns", "n", defNS, "namespace (env CHORUS_NS)")
	needNS := func() error {
		if ns == "" {
			return usageError{errors.New("--ns is required (or set CHORUS_NS)")}
		}
		return nil
	}

	var prevPut bool
	put := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "Set a key (the value from stdin when omitted)",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needNS(); err != nil {
				return err
			}
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			var value []byte
			if len(args) == 2 {
				value = []byte(args[1])
			} else if value, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20)); err != nil {
				return fmt.Errorf("read value from stdin: %w", err)
			}
			var opts []client.OpOption
			if prevPut {
				opts = append(opts, client.WithPrevKV())
			}
			res, err := c.Put(ctx, ns, []byte(args[0]), value, opts...)
			if err != nil {
				return apiErr(err)
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "OK index=%d\n", res.Index)
			if res.PrevKV != nil {
				return table(out, kvHeader, kvRows([]client.KeyValue{*res.PrevKV}))
			}
			return nil
		},
	}
	put.Flags().BoolVar(&prevPut, "prev-kv", false, "print the previous key-value")

	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Read a key (linearizable); -o value prints the raw value only",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needNS(); err != nil {
				return err
			}
			c, ctx, cancel, err := f.open(cmd, "value")
			if err != nil {
				return err
			}
			defer cancel()
			res, err := c.Get(ctx, ns, []byte(args[0]))
			if err != nil {
				return apiErr(err)
			}
			out := cmd.OutOrStdout()
			switch f.output {
			case "json":
				return printJSON(out, res)
			case "value":
				_, err := out.Write(res.KV.Value)
				return err
			}
			return table(out, kvHeader, kvRows([]client.KeyValue{res.KV}))
		},
	}

	var prevDel bool
	del := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete a key (a missing key deletes nothing and succeeds)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needNS(); err != nil {
				return err
			}
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			var opts []client.OpOption
			if prevDel {
				opts = append(opts, client.WithPrevKV())
			}
			res, err := c.Delete(ctx, ns, []byte(args[0]), opts...)
			if err != nil {
				return apiErr(err)
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "deleted %d index=%d\n", res.Deleted, res.Index)
			if res.PrevKV != nil {
				return table(out, kvHeader, kvRows([]client.KeyValue{*res.PrevKV}))
			}
			return nil
		},
	}
	del.Flags().BoolVar(&prevDel, "prev-kv", false, "print the deleted key-value")

	var (
		prefix string
		limit  int
		all    bool
	)
	scan := &cobra.Command{
		Use:   "scan [START [END]]",
		Short: "List keys in [START, END) in order (linearizable)",
		Args:  rangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needNS(); err != nil {
				return err
			}
			if limit < 0 {
				return usageError{fmt.Errorf("--limit %d must not be negative", limit)}
			}
			if prefix != "" && len(args) > 0 {
				return usageError{errors.New("--prefix excludes START and END")}
			}
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			req := client.ScanRequest{Limit: limit}
			if prefix != "" {
				req.Start, req.End = []byte(prefix), prefixEnd([]byte(prefix))
			}
			if len(args) > 0 {
				req.Start = []byte(args[0])
			}
			if len(args) > 1 {
				req.End = []byte(args[1])
			}
			var (
				kvs  []client.KeyValue
				last client.ScanResult
			)
			for {
				res, err := c.Scan(ctx, ns, req)
				if err != nil {
					return apiErr(err)
				}
				kvs = append(kvs, res.KVs...)
				last = res
				if !all || !res.More || res.PageToken == "" {
					break
				}
				req.PageToken = res.PageToken
			}
			last.KVs = kvs
			if all {
				last.More, last.PageToken = false, ""
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				return printJSON(out, last)
			}
			if err := table(out, kvHeader, kvRows(kvs)); err != nil {
				return err
			}
			if last.More {
				fmt.Fprintf(out, "(more keys; continue with the server's page token %s, or pass --all)\n", last.PageToken)
			}
			return nil
		},
	}
	scan.Flags().StringVar(&prefix, "prefix", "", "list the keys with this prefix")
	scan.Flags().IntVar(&limit, "limit", 0, "most keys per page (0: the server's maximum)")
	scan.Flags().BoolVar(&all, "all", false, "follow the pages to the end of the range")

	var file string
	txn := &cobra.Command{
		Use:   "txn",
		Short: "Run a transaction given as JSON (docs/api.md) on stdin or in --file",
		Long: `txn runs one transaction, written as the JSON body of POST /v1/ns/{ns}/txn:
  {"compare":[{"key":"<base64>","target":"version","result":"equal","version":1}],
   "then":[{"type":"put","key":"<base64>","value":"<base64>"}],
   "else":[{"type":"get","key":"<base64>"}]}
It exits 4 when the compares did not hold (the else branch ran).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needNS(); err != nil {
				return err
			}
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			var in io.Reader = cmd.InOrStdin()
			if file != "" {
				fh, err := os.Open(file)
				if err != nil {
					return usageError{fmt.Errorf("--file: %w", err)}
				}
				defer fh.Close()
				in = fh
			}
			data, err := io.ReadAll(io.LimitReader(in, 64<<20))
			if err != nil {
				return fmt.Errorf("read txn: %w", err)
			}
			var t client.Txn
			dec := json.NewDecoder(strings.NewReader(string(data)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&t); err != nil {
				return usageError{fmt.Errorf("txn JSON: %w", err)}
			}
			res, err := c.Txn(ctx, ns, t)
			if err != nil && !errors.Is(err, client.ErrCompareFailed) {
				return apiErr(err)
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				if perr := printJSON(out, res); perr != nil {
					return perr
				}
			} else {
				fmt.Fprintf(out, "succeeded=%t index=%d\n", res.Succeeded, res.Index)
				for i, r := range res.Results {
					fmt.Fprintf(out, "result %d: deleted=%d more=%t\n", i, r.Deleted, r.More)
					if len(r.KVs) > 0 {
						if err := table(out, kvHeader, kvRows(r.KVs)); err != nil {
							return err
						}
					}
				}
			}
			return apiErr(err)
		},
	}
	txn.Flags().StringVarP(&file, "file", "f", "", "file holding the txn JSON (default stdin)")

	cmd.AddCommand(put, get, del, scan, txn)
	return cmd
}

// prefixEnd is the first key after every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
