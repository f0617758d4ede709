// Package archtest enforces the layering of DESIGN.md section 5: the pure
// layers (foundation and protocol cores) stay deterministic, so that one
// simulator seed reproduces one run.
//
// It parses the non-test Go files of each pure package and reports:
//   - an import of a package that brings in I/O, time, concurrency or hidden
//     randomness (os, net, time, sync, context, math/rand, ...);
//   - a use of a global function of math/rand/v2 (only explicit sources such
//     as rand.New(rand.NewPCG(seed, seed)) are allowed);
//   - an import of a chorus package outside the pure layers, or of a pure
//     package of a higher layer;
//   - an import of a module outside the standard library;
//   - a go statement, a select statement, a channel type, send or receive.
//
// Test files are exempt: a test may use whatever it needs to drive a core.
package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Module is the import path prefix of chorus packages.
const Module = "github.com/chorus-project/chorus"

// Layers lists the pure packages by layer, relative to the module root. A
// package may import pure packages of its own layer or a lower one, and no
// other chorus package.
var Layers = [][]string{
	{"internal/invariant", "internal/peer", "internal/wire"},    // 0: foundation
	{"internal/quorum", "internal/vclock", "internal/liveness"}, // 1: small pure pieces
	{"internal/order", "internal/vsync", "internal/paxos"},      // 2: protocol cores
	{"internal/kv"}, // 3: deterministic state machines
}

// allowedModules are third-party packages a pure package may import: pure
// data structures with no I/O, goroutines or clock, each with its reason.
var allowedModules = map[string]string{
	"github.com/tidwall/btree": "the ordered keys of internal/kv (a B-tree, no I/O or goroutines)",
}

// forbiddenImports are standard-library packages a pure package must not
// import, with the reason printed in the violation.
var forbiddenImports = map[string]string{
	"os":            "I/O belongs in the shell",
	"os/exec":       "I/O belongs in the shell",
	"os/signal":     "I/O belongs in the shell",
	"io/ioutil":     "I/O belongs in the shell",
	"io/fs":         "I/O belongs in the shell",
	"net":           "the network belongs in the shell",
	"net/http":      "the network belongs in the shell",
	"syscall":       "I/O belongs in the shell",
	"time":          "time is a tick count passed in by Tick()",
	"sync":          "a core is single-threaded",
	"sync/atomic":   "a core is single-threaded",
	"context":       "cores take no context; shells do",
	"math/rand":     "use an injected *rand.Rand from math/rand/v2",
	"crypto/rand":   "randomness must come from the injected seeded source",
	"log":           "a core reports through Ready, it does not log",
	"log/slog":      "a core reports through Ready, it does not log",
	"unsafe":        "no unsafe in protocol code",
	"runtime":       "no scheduler or GC interaction in protocol code",
	"reflect":       "no reflection in protocol code",
	"testing":       "test helpers belong in _test.go files",
	"embed":         "no embedded files in protocol code",
	"plugin":        "no plugins in protocol code",
	"os/user":       "I/O belongs in the shell",
	"path/filepath": "file paths belong in the shell",
}

// randV2Allowed are the math/rand/v2 names that do not touch the global
// source: constructors and types for an explicitly seeded generator.
var randV2Allowed = map[string]bool{
	"New": true, "NewPCG": true, "NewChaCha8": true, "NewZipf": true,
	"Rand": true, "PCG": true, "ChaCha8": true, "Source": true, "Zipf": true,
}

// Violation is one broken rule at one place.
type Violation struct {
	Pos  string // file:line
	Rule string
}

func (v Violation) String() string { return v.Pos + ": " + v.Rule }

// Check inspects the pure packages under root (a module root laid out like
// chorus) and returns every violation, sorted by position. Packages of
// Layers that do not exist yet are skipped.
func Check(root string) ([]Violation, error) {
	layerOf := map[string]int{}
	for layer, pkgs := range Layers {
		for _, p := range pkgs {
			layerOf[p] = layer
		}
	}
	var out []Violation
	for layer, pkgs := range Layers {
		for _, pkg := range pkgs {
			dir := filepath.Join(root, filepath.FromSlash(pkg))
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				continue
			}
			vs, err := checkPackage(dir, layer, layerOf)
			if err != nil {
				return nil, err
			}
			out = append(out, vs...)
		}
	}
	slices.SortFunc(out, func(a, b Violation) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

func checkPackage(dir string, layer int, layerOf map[string]int) ([]Violation, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("archtest: %w", err)
	}
	fset := token.NewFileSet()
	var out []Violation
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("archtest: %w", err)
		}
		report := func(pos token.Pos, format string, args ...any) {
			p := fset.Position(pos)
			out = append(out, Violation{
				Pos:  fmt.Sprintf("%s:%d", filepath.ToSlash(filepath.Join(filepath.Base(dir), filepath.Base(p.Filename))), p.Line),
				Rule: fmt.Sprintf(format, args...),
			})
		}
		randV2 := checkImports(f, layer, layerOf, report)
		checkBody(f, randV2, report)
	}
	return out, nil
}

// checkImports reports forbidden imports and returns the local name under
// which math/rand/v2 is imported ("" if it is not).
func checkImports(f *ast.File, layer int, layerOf map[string]int, report func(token.Pos, string, ...any)) string {
	randV2 := ""
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue // the parser accepted it, so this cannot happen
		}
		switch {
		case forbiddenImports[path] != "":
			report(imp.Pos(), "imports %q: %s", path, forbiddenImports[path])
		case path == "math/rand/v2":
			randV2 = "rand"
			if imp.Name != nil {
				randV2 = imp.Name.Name
			}
		case strings.HasPrefix(path, Module+"/"):
			rel := strings.TrimPrefix(path, Module+"/")
			l, pure := layerOf[rel]
			if !pure {
				report(imp.Pos(), "imports %q: a pure package may import only pure packages", path)
			} else if l > layer {
				report(imp.Pos(), "imports %q of layer %d from layer %d", path, l, layer)
			}
		case allowedModules[path] != "":
		case strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
			report(imp.Pos(), "imports %q: a pure package uses the standard library only", path)
		}
	}
	return randV2
}

func checkBody(f *ast.File, randV2 string, report func(token.Pos, string, ...any)) {
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			report(n.Pos(), "go statement: a core is single-threaded")
		case *ast.SelectStmt:
			report(n.Pos(), "select statement: a core is single-threaded")
		case *ast.ChanType:
			report(n.Pos(), "channel type: a core is single-threaded")
		case *ast.SendStmt:
			report(n.Pos(), "channel send: a core is single-threaded")
		case *ast.UnaryExpr:
			if n.Op == token.ARROW {
				report(n.Pos(), "channel receive: a core is single-threaded")
			}
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && randV2 != "" && id.Name == randV2 && !randV2Allowed[n.Sel.Name] {
				report(n.Pos(), "math/rand/v2 global %s: use an injected *rand.Rand", n.Sel.Name)
			}
		}
		return true
	})
}
