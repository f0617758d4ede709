package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/client"
)

func newNSCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "ns",
		Short: "Create, list, describe and delete namespaces",
		Long: `ns manages namespaces, each with a replication mode (paxos; active once the group
layer is wired in). Exit codes: 0 ok, 1 error, 2 usage, 3 namespace not found.`,
	}
	addClientFlags(cmd, &f)

	var (
		mode   string
		params []string
	)
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a namespace",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := client.NamespaceSpec{Name: args[0], Mode: mode}
			for _, p := range params {
				k, v, ok := strings.Cut(p, "=")
				if !ok || k == "" {
					return usageError{fmt.Errorf("--param %q: want key=value", p)}
				}
				if spec.Params == nil {
					spec.Params = map[string]string{}
				}
				spec.Params[k] = v
			}
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			ns, err := c.CreateNamespace(ctx, spec)
			if err != nil {
				return apiErr(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), ns)
			}
			return nsTable(cmd, []client.Namespace{ns})
		},
	}
	create.Flags().StringVar(&mode, "mode", "paxos", "replication mode")
	create.Flags().StringArrayVar(&params, "param", nil, "mode parameter key=value (repeatable)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the namespaces",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			nss, err := c.Namespaces(ctx)
			if err != nil {
				return apiErr(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), client.NamespaceList{Namespaces: nss})
			}
			return nsTable(cmd, nss)
		},
	}

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Describe a namespace",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			ns, err := c.Namespace(ctx, args[0])
			if err != nil {
				return apiErr(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), ns)
			}
			return nsTable(cmd, []client.Namespace{ns})
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a namespace and all its keys",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.DeleteNamespace(ctx, args[0]); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "namespace %s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, get, del)
	return cmd
}

func nsTable(cmd *cobra.Command, nss []client.Namespace) error {
	rows := make([][]string, len(nss))
	for i, n := range nss {
		keys := make([]string, 0, len(n.Params))
		for k := range n.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ps := make([]string, len(keys))
		for j, k := range keys {
			ps[j] = k + "=" + n.Params[k]
		}
		rows[i] = []string{n.Name, n.Mode, strconv.FormatUint(n.Keys, 10), strconv.FormatUint(n.CreateIndex, 10), strings.Join(ps, ",")}
	}
	return table(cmd.OutOrStdout(), "NAME\tMODE\tKEYS\tCREATE_INDEX\tPARAMS", rows)
}
