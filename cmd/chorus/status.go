package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/client"
)

func newStatusCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of every endpoint's member",
		Long: `status asks each member of --endpoints for its state: role, leader and log
positions. It exits 1 if any member does not answer (and still prints the others).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			var (
				sts    []client.Status
				failed []string
				rows   [][]string
			)
			for _, ep := range c.Endpoints() {
				st, err := c.Status(ctx, ep)
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", ep, err))
					rows = append(rows, []string{ep, "-", "-", "unreachable", "-", "-", "-", "-"})
					continue
				}
				sts = append(sts, st)
				rows = append(rows, []string{ep, strconv.FormatUint(st.ID, 10), strconv.FormatUint(st.ClusterID, 10), st.Role,
					strconv.FormatUint(st.Leader, 10), strconv.FormatUint(st.Commit, 10), strconv.FormatUint(st.Applied, 10),
					fmt.Sprint(st.Members)})
			}
			if f.output == "json" {
				if err := printJSON(cmd.OutOrStdout(), sts); err != nil {
					return err
				}
			} else if err := table(cmd.OutOrStdout(), "ENDPOINT\tID\tCLUSTER\tROLE\tLEADER\tCOMMIT\tAPPLIED\tMEMBERS", rows); err != nil {
				return err
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d members did not answer: %s", len(failed), len(c.Endpoints()), strings.Join(failed, "; "))
			}
			return nil
		},
	}
	addClientFlags(cmd, &f)
	return cmd
}
