package sim

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput and kvOutput are the porcupine model's operation types.
type kvInput struct {
	put   bool
	key   string
	value string
}

type kvOutput struct {
	value string
}

// registerModel is a single register: the state of one key. Histories are
// split per key (Partition), so porcupine searches each key alone.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.put {
			return true, in.value
		}
		return output.(kvOutput).value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.put {
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		return fmt.Sprintf("get(%s) -> %s", in.key, output.(kvOutput).value)
	},
}

// linearizabilityTimeout bounds porcupine's search per run. Histories are
// kept small (few clients, unknown puts that never took effect dropped), so
// a check takes milliseconds; hitting this is reported, not ignored.
const linearizabilityTimeout = 20 * time.Second

// porcupineHistory turns the recorded history into porcupine operations:
//   - an answered operation is [call, return];
//   - a put the client gave up on (or still waiting at the end) may have
//     taken effect at any time after its call: its return is at infinity.
//     If no member ever applied its value it cannot have taken effect
//     (reads return applied values only), so it is left out, which keeps
//     the search small;
//   - a get without an answer has no effect and no result: left out.
func (w *world) porcupineHistory() []porcupine.Operation {
	var ops []porcupine.Operation
	for _, op := range w.history {
		in := kvInput{put: op.put, key: op.key}
		if op.put {
			in.value = op.value
		}
		switch {
		case op.status == opOK:
			ops = append(ops, porcupine.Operation{ClientId: int(op.client), Input: in, Call: op.call,
				Output: kvOutput{value: op.value}, Return: op.ret})
		case op.put && w.appliedValues[op.value]:
			ops = append(ops, porcupine.Operation{ClientId: int(op.client), Input: in, Call: op.call,
				Output: kvOutput{}, Return: math.MaxInt64})
		}
	}
	return ops
}

// checkLinearizable runs porcupine on the history, key by key, and reports
// the keys whose history has no linearization.
func (w *world) checkLinearizable() {
	ops := w.porcupineHistory()
	for _, part := range registerModel.Partition(ops) {
		key := part[0].Input.(kvInput).key
		switch porcupine.CheckOperationsTimeout(registerModel, part, linearizabilityTimeout) {
		case porcupine.Ok:
		case porcupine.Illegal:
			w.fail("linearizability", "key %s: history of %d operations is not linearizable:\n%s", key, len(part), describeOps(part))
		default:
			w.fail("linearizability", "key %s: checker timed out on %d operations", key, len(part))
		}
	}
}

// describeOpsMax bounds how much of a failing history goes into a report.
const describeOpsMax = 60

func describeOps(ops []porcupine.Operation) string {
	var b strings.Builder
	for i, op := range ops {
		if i == describeOpsMax {
			fmt.Fprintf(&b, "    ... %d more\n", len(ops)-i)
			break
		}
		ret := fmt.Sprint(op.Return)
		if op.Return == math.MaxInt64 {
			ret = "unknown"
		}
		fmt.Fprintf(&b, "    c%d [%d, %s] %s\n", op.ClientId, op.Call, ret, registerModel.DescribeOperation(op.Input, op.Output))
	}
	return b.String()
}
