package main

import (
	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/pkg/tool"
)

// A toolCommand ties a tool's descriptor to the command that runs it.
type toolCommand struct {
	desc   *tool.Descriptor
	newCmd func(*globalFlags) *cobra.Command
}

// toolCommands holds every tool, in the order their files register them.
var toolCommands []toolCommand

// addTool registers a tool from its command's file (in init): the root
// command adds the command, and `bpfkit check` probes the tool's hooks.
func addTool(d *tool.Descriptor, newCmd func(*globalFlags) *cobra.Command) {
	toolCommands = append(toolCommands, toolCommand{d, newCmd})
}
