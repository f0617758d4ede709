package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/client"
)

func newMembersCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the cluster's members and its leader",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			ms, err := c.Members(ctx)
			if err != nil {
				return apiErr(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			rows := make([][]string, len(ms.Members))
			for i, m := range ms.Members {
				rows[i] = []string{strconv.FormatUint(m.ID, 10), m.PeerAddr, m.HTTPAddr, strconv.FormatBool(m.Leader)}
			}
			return table(cmd.OutOrStdout(), "ID\tPEER_ADDR\tHTTP_ADDR\tLEADER", rows)
		},
	}
	addClientFlags(cmd, &f)

	var peerAddr, httpAddr string
	add := &cobra.Command{
		Use:   "add ID --peer-addr host:port --http-addr host:port",
		Short: "Add a member (then start it with chorus server --join)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return usageError{fmt.Errorf("member id %q is not a non-zero integer", args[0])}
			}
			if peerAddr == "" || httpAddr == "" {
				return usageError{fmt.Errorf("--peer-addr and --http-addr are required")}
			}
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.AddMember(ctx, client.MemberAdd{ID: id, PeerAddr: peerAddr, HTTPAddr: httpAddr}); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "member %d added\n", id)
			return nil
		},
	}
	add.Flags().StringVar(&peerAddr, "peer-addr", "", "the new member's --listen-peer")
	add.Flags().StringVar(&httpAddr, "http-addr", "", "the new member's --listen-http")
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a member",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return usageError{fmt.Errorf("member id %q is not a non-zero integer", args[0])}
			}
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.RemoveMember(ctx, id); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "member %d removed\n", id)
			return nil
		},
	}
	cmd.AddCommand(add, remove)
	return cmd
}
