package main

import (
	"strconv"

	"github.com/spf13/cobra"
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
	return cmd
}
