package kv

import (
	"fmt"
	"maps"
	"slices"
)

// validateName checks a namespace name: [A-Za-z0-9._-]{1,64}, not "." or
// "..", so that it is safe in a URL path and a file name.
func validateName(name string) error {
	if len(name) == 0 || len(name) > NamespaceNameBytesMax {
		return fmt.Errorf("%w: namespace name must be 1..%d bytes, got %d", ErrBadRequest, NamespaceNameBytesMax, len(name))
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: namespace name %q is reserved", ErrBadRequest, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLowerAlnum(c) && !(c >= 'A' && c <= 'Z') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: namespace name %q: byte %d is not one of [A-Za-z0-9._-]", ErrBadRequest, name, i)
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func validateSpec(s NamespaceSpec) error {
	if err := validateName(s.Name); err != nil {
		return err
	}
	if len(s.Mode) == 0 || len(s.Mode) > ModeBytesMax {
		return fmt.Errorf("%w: mode must be 1..%d bytes, got %d", ErrBadRequest, ModeBytesMax, len(s.Mode))
	}
	for i := 0; i < len(s.Mode); i++ {
		if c := s.Mode[i]; !isLowerAlnum(c) && c != '-' {
			return fmt.Errorf("%w: mode %q: byte %d is not one of [a-z0-9-]", ErrBadRequest, s.Mode, i)
		}
	}
	if len(s.Params) > ParamsMax {
		return fmt.Errorf("%w: %d params, limit %d", ErrTooLarge, len(s.Params), ParamsMax)
	}
	// Sorted, so that which key is reported first does not depend on map
	// order: the message is part of the replicated response.
	for _, k := range slices.Sorted(maps.Keys(s.Params)) {
		if len(k) == 0 || len(k) > ParamKeyBytesMax {
			return fmt.Errorf("%w: param key %q must be 1..%d bytes", ErrBadRequest, k, ParamKeyBytesMax)
		}
		if v := s.Params[k]; len(v) > ParamValueBytesMax {
			return fmt.Errorf("%w: param %q has a value of %d bytes, limit %d", ErrTooLarge, k, len(v), ParamValueBytesMax)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
				return fmt.Errorf("%w: param key %q: byte %d is not one of [a-z0-9._-]", ErrBadRequest, k, i)
			}
		}
	}
	return nil
}

// validateTxn checks every compare and op of txn against cfg, so that a
// txn that passes can only fail on the size of its response.
func validateTxn(txn Txn, cfg Config) error {
	if n := len(txn.Compares) + len(txn.Then) + len(txn.Else); n > cfg.TxnOpsMax {
		return fmt.Errorf("%w: %d compares and ops, TxnOpsMax is %d", ErrTooLarge, n, cfg.TxnOpsMax)
	}
	for i, c := range txn.Compares {
		if err := validateCompare(c, cfg); err != nil {
			return fmt.Errorf("compare %d: %w", i, err)
		}
	}
	for i, op := range txn.Then {
		if err := validateOp(op, cfg); err != nil {
			return fmt.Errorf("then[%d]: %w", i, err)
		}
	}
	for i, op := range txn.Else {
		if err := validateOp(op, cfg); err != nil {
			return fmt.Errorf("else[%d]: %w", i, err)
		}
	}
	return nil
}

// validateReadOnly checks that txn may be run by Query.
func validateReadOnly(txn Txn) error {
	if len(txn.Compares) > 0 || len(txn.Else) > 0 {
		return fmt.Errorf("%w: a query has no compares and no else ops", ErrBadRequest)
	}
	for i, op := range txn.Then {
		if op.Type != OpGet && op.Type != OpRange {
			return fmt.Errorf("%w: then[%d]: a query has only get and range ops, not %s", ErrBadRequest, i, op.Type)
		}
	}
	return nil
}

func validateKey(what string, key []byte, cfg Config) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: %s is empty", ErrBadRequest, what)
	}
	if len(key) > cfg.KeyBytesMax {
		return fmt.Errorf("%w: %s of %d bytes, KeyBytesMax is %d", ErrTooLarge, what, len(key), cfg.KeyBytesMax)
	}
	return nil
}

func validateValue(value []byte, cfg Config) error {
	if len(value) > cfg.ValueBytesMax {
		return fmt.Errorf("%w: value of %d bytes, ValueBytesMax is %d", ErrTooLarge, len(value), cfg.ValueBytesMax)
	}
	return nil
}

func validateCompare(c Compare, cfg Config) error {
	if err := validateKey("key", c.Key, cfg); err != nil {
		return err
	}
	if c.Result < Equal || c.Result > Greater {
		return fmt.Errorf("%w: %s is not a compare result", ErrBadRequest, c.Result)
	}
	// Only the operand of the target may be set: a stray one is a mistake
	// of the caller (comparing a version while meaning the value).
	stray := ""
	switch c.Target {
	case TargetValue:
		if err := validateValue(c.Value, cfg); err != nil {
			return err
		}
		if c.Version != 0 || c.Index != 0 || c.Exists {
			stray = "version, index or exists"
		}
	case TargetVersion:
		if len(c.Value) > 0 || c.Index != 0 || c.Exists {
			stray = "value, index or exists"
		}
	case TargetModIndex, TargetCreateIndex:
		if len(c.Value) > 0 || c.Version != 0 || c.Exists {
			stray = "value, version or exists"
		}
	case TargetExists:
		if c.Result != Equal && c.Result != NotEqual {
			return fmt.Errorf("%w: exists compares with == or != only, not %s", ErrBadRequest, c.Result)
		}
		if len(c.Value) > 0 || c.Version != 0 || c.Index != 0 {
			stray = "value, version or index"
		}
	default:
		return fmt.Errorf("%w: %s is not a compare target", ErrBadRequest, c.Target)
	}
	if stray != "" {
		return fmt.Errorf("%w: a %s compare sets %s", ErrBadRequest, c.Target, stray)
	}
	return nil
}

func validateOp(op Op, cfg Config) error {
	// Range and DeleteRange may start at the empty key when they have an
	// End (Key "" with End "\x00" is the whole namespace).
	// Their bounds may be one byte longer than a key: the page after a key
	// of KeyBytesMax bytes starts at that key + "\x00", and a range
	// through it ends there.
	ranged := op.Type == OpRange || op.Type == OpDeleteRange
	if ranged {
		if len(op.Key) == 0 && len(op.End) == 0 {
			return fmt.Errorf("%w: key is empty (use end \"\\x00\" for the whole namespace)", ErrBadRequest)
		}
		if len(op.Key) > cfg.KeyBytesMax+1 || len(op.End) > cfg.KeyBytesMax+1 {
			return fmt.Errorf("%w: range bound of %d bytes, KeyBytesMax + 1 is %d",
				ErrTooLarge, max(len(op.Key), len(op.End)), cfg.KeyBytesMax+1)
		}
	} else {
		if err := validateKey("key", op.Key, cfg); err != nil {
			return err
		}
		if len(op.End) > cfg.KeyBytesMax {
			return fmt.Errorf("%w: end of %d bytes, KeyBytesMax is %d", ErrTooLarge, len(op.End), cfg.KeyBytesMax)
		}
	}
	if op.Limit < 0 {
		return fmt.Errorf("%w: negative limit %d", ErrBadRequest, op.Limit)
	}
	stray := ""
	switch op.Type {
	case OpPut:
		if err := validateValue(op.Value, cfg); err != nil {
			return err
		}
		if len(op.End) > 0 || op.Limit != 0 {
			stray = "end or limit"
		}
	case OpDelete:
		if len(op.End) > 0 || len(op.Value) > 0 || op.Limit != 0 {
			stray = "end, value or limit (use delete-range for a range)"
		}
	case OpGet:
		if len(op.End) > 0 || len(op.Value) > 0 || op.Limit != 0 || op.PrevKV {
			stray = "end, value, limit or prevkv (use range for a range)"
		}
	case OpRange:
		if len(op.Value) > 0 || op.PrevKV {
			stray = "value or prevkv"
		}
	case OpDeleteRange:
		if len(op.Value) > 0 || op.Limit != 0 {
			stray = "value or limit"
		}
	default:
		return fmt.Errorf("%w: %s is not an op type", ErrBadRequest, op.Type)
	}
	if stray != "" {
		return fmt.Errorf("%w: a %s op sets %s", ErrBadRequest, op.Type, stray)
	}
	return nil
}
