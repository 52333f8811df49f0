package docs

import (
	"go/build"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/strata-kv/strata/"

// TestDesignMap: every package of the module has a row in design.md's map,
// and the Strata packages it imports (non-test files, this GOOS) are
// exactly the ones the row lists. bench/ is one row, checked loosely: its
// packages may import only bench/ and internal/loadclient.
func TestDesignMap(t *testing.T) {
	rows := mapRows(t)
	for dir, imports := range moduleImports(t) {
		if dir == "docs" {
			continue
		}
		if strings.HasPrefix(dir, "bench") {
			for _, imp := range imports {
				if !strings.HasPrefix(imp, "bench") && imp != "internal/loadclient" {
					t.Errorf("%s imports %s: the map allows bench/ only bench/* and internal/loadclient", dir, imp)
				}
			}
			continue
		}
		want, ok := rows[dir]
		if !ok {
			t.Errorf("package %s has no row in design.md's map", dir)
			continue
		}
		if got, w := strings.Join(imports, ", "), strings.Join(want, ", "); got != w {
			t.Errorf("%s imports [%s]; design.md lists [%s]", dir, got, w)
		}
		delete(rows, dir)
	}
	for dir := range rows {
		t.Errorf("design.md's map lists %s, which is not a package", dir)
	}
}

// mapRows reads the map table: each package named in a row's first cell
// to the imports its third cell lists, sorted.
func mapRows(t *testing.T) map[string][]string {
	b, err := os.ReadFile("design.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		names := code.FindAllStringSubmatch(cells[1], -1)
		var imports []string
		for _, f := range strings.Split(cells[3], ",") {
			if f = strings.TrimSpace(f); f != "" {
				imports = append(imports, f)
			}
		}
		for _, n := range names {
			if strings.HasPrefix(n[1], "bench") {
				continue
			}
			rows[n[1]] = imports
		}
	}
	for k := range rows {
		sort.Strings(rows[k])
	}
	if len(rows) == 0 {
		t.Fatal("no map table found in design.md")
	}
	return rows
}

// moduleImports maps each package dir (relative to the module root) to
// the module packages its non-test files import, sorted.
func moduleImports(t *testing.T) map[string][]string {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(p, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, p)
		var imports []string
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) {
				imports = append(imports, strings.TrimPrefix(imp, module))
			}
		}
		sort.Strings(imports)
		out[filepath.ToSlash(rel)] = imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
