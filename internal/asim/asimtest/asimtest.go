// Package asimtest reads internal/asim's test data for the tests of other
// packages: the field set of the golden records (the one source of truth
// for what -log-format asim writes) and the columns of ASimWebSessionLogs.
// Only tests import it.
package asimtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
)

// testdata is internal/asim/testdata, found from this file's location so
// that a test in any directory reads the same files.
func testdata(t testing.TB, name string) []byte {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("asimtest: cannot locate its own source")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenField is a top-level key of an indented golden record.
var goldenField = regexp.MustCompile(`(?m)^  "([A-Za-z]+)":`)

// GoldenFields returns the top-level fields of the golden records
// (testdata/records.golden): every field the Handler writes for some
// record kind.
func GoldenFields(t testing.TB) map[string]bool {
	t.Helper()
	fields := map[string]bool{}
	for _, m := range goldenField.FindAllSubmatch(testdata(t, "records.golden"), -1) {
		fields[string(m[1])] = true
	}
	if len(fields) == 0 {
		t.Fatal("asimtest: the golden records have no fields")
	}
	return fields
}

// TableColumns returns the columns of ASimWebSessionLogs
// (testdata/ASimWebSessionLogs.json): name to type.
func TableColumns(t testing.TB) map[string]string {
	t.Helper()
	var tbl struct {
		Columns []struct{ Name, Type string }
	}
	if err := json.Unmarshal(testdata(t, "ASimWebSessionLogs.json"), &tbl); err != nil {
		t.Fatal(err)
	}
	cols := map[string]string{}
	for _, c := range tbl.Columns {
		cols[c.Name] = c.Type
	}
	return cols
}
