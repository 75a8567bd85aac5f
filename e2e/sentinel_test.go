package e2e

import (
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/azegress/azegress/internal/asim/asimtest"
)

// Static checks of the Microsoft Sentinel path (README, "Send logs to
// Microsoft Sentinel"): the template with the data collection rule, the
// Azure Monitor Agent and the association; the drop-in that makes serve
// write the file; its logrotate configuration.

const (
	depSentinelARM    = depDir + "/azure/sentinel.json"
	depSentinelDropIn = depDir + "/systemd/azegress-sentinel.conf"
	depLogrotate      = depDir + "/logrotate/azegress"
)

// depKQLProject matches the transform: keep the Web Session records, and
// project the columns.
var depKQLProject = regexp.MustCompile(`^source \| where EventSchema == 'WebSession' \| project (.+)$`)

// depKQLColumn is one projected column: Name, or Name = f(Name).
var depKQLColumn = regexp.MustCompile(`^([A-Za-z]+)(?: = (?:todatetime|toint|toreal|tostring|todynamic)\(([A-Za-z]+)\))?$`)

func TestSentinelTemplate(t *testing.T) {
	t.Parallel()
	var tmpl, main map[string]any
	for file, v := range map[string]*map[string]any{depSentinelARM: &tmpl, depARM: &main} {
		if err := json.Unmarshal([]byte(depRead(t, file)), v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	const workspace = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"
	ev := &depARMEval{t: t, tmpl: tmpl, params: map[string]any{"workspaceResourceId": workspace}}
	mainEv := &depARMEval{t: t, tmpl: main, params: map[string]any{}}
	golden, table := asimtest.GoldenFields(t), asimtest.TableColumns(t)

	// The rule reads the file the drop-in has serve write, as JSON lines.
	dcr := depOne(t, tmpl, "Microsoft.Insights/dataCollectionRules")
	if depStr(dcr, "kind") != "Linux" {
		t.Errorf("data collection rule kind %q, want Linux", depStr(dcr, "kind"))
	}
	props := depDig(dcr, "properties")
	files := depList(props, "dataSources", "logFiles")
	if len(files) != 1 {
		t.Fatalf("data collection rule: %d logFiles sources, want 1", len(files))
	}
	stream := ev.str("[variables('streamName')]")
	logFile := ev.str("[parameters('logFile')]")
	src := files[0]
	if depStr(src, "format") != "json" || len(depList(src, "filePatterns")) != 1 || ev.str(depList(src, "filePatterns")[0]) != logFile {
		t.Errorf("logFiles source: want format json and filePatterns [%s], have %v", logFile, src)
	}
	if s := depList(src, "streams"); len(s) != 1 || ev.str(s[0]) != stream {
		t.Errorf("logFiles source streams %v, want [%s]", s, stream)
	}
	dropIn := depCheckDropIn(t)
	if dropIn["log-file"] != logFile || dropIn["log-format"] != "asim" {
		t.Errorf("%s: -log-format %q -log-file %q; the rule reads %s in the asim format", depSentinelDropIn, dropIn["log-format"], dropIn["log-file"], logFile)
	}

	// The stream declares exactly the golden records' fields, each with
	// the type of its column in ASimWebSessionLogs.
	declared := map[string]bool{}
	for _, c := range depList(props, "streamDeclarations", stream, "columns") {
		name, typ := depStr(c, "name"), depStr(c, "type")
		declared[name] = true
		if !golden[name] {
			t.Errorf("stream column %s: -log-format asim writes no such field (internal/asim/testdata/records.golden)", name)
		}
		if want, ok := table[name]; !ok || typ != want {
			t.Errorf("stream column %s: type %q; ASimWebSessionLogs has %q", name, typ, want)
		}
	}
	for f := range golden {
		if !declared[f] {
			t.Errorf("-log-format asim writes %s, which the stream does not declare: the rule would drop it", f)
		}
	}

	// The flow keeps the Web Session records and projects each declared
	// column, unchanged, onto a column of ASimWebSessionLogs.
	flows := depList(props, "dataFlows")
	if len(flows) != 1 {
		t.Fatalf("data collection rule: %d dataFlows, want 1", len(flows))
	}
	flow := flows[0]
	if got := depStr(flow, "outputStream"); got != "Microsoft-ASimWebSessionLogs" {
		t.Errorf("outputStream %q, want Microsoft-ASimWebSessionLogs", got)
	}
	m := depKQLProject.FindStringSubmatch(depStr(flow, "transformKql"))
	if m == nil {
		t.Fatalf("transformKql %q: want source | where EventSchema == 'WebSession' | project ...", depStr(flow, "transformKql"))
	}
	projected := map[string]bool{}
	for _, item := range strings.Split(m[1], ", ") {
		c := depKQLColumn.FindStringSubmatch(item)
		if c == nil || (c[2] != "" && c[2] != c[1]) {
			t.Errorf("transformKql: %q is not a column projected onto itself", item)
			continue
		}
		projected[c[1]] = true
		if _, ok := table[c[1]]; !ok {
			t.Errorf("transformKql projects %s, which is not a column of ASimWebSessionLogs", c[1])
		}
		if !declared[c[1]] {
			t.Errorf("transformKql projects %s, which the stream does not declare", c[1])
		}
	}
	for c := range declared {
		if !projected[c] {
			t.Errorf("stream column %s is not projected: the table would not get it", c)
		}
	}
	dests := depList(props, "destinations", "logAnalytics")
	if len(dests) != 1 || ev.str(depDig(dests[0], "workspaceResourceId")) != workspace {
		t.Fatalf("destinations.logAnalytics: want the workspace parameter, have %v", dests)
	}
	if d := depList(flow, "destinations"); len(d) != 1 || d[0] != depStr(dests[0], "name") {
		t.Errorf("dataFlows destinations %v, want [%s]", d, depStr(dests[0], "name"))
	}
	if s := depList(flow, "streams"); len(s) != 1 || ev.str(s[0]) != stream {
		t.Errorf("dataFlows streams %v, want [%s]", s, stream)
	}

	// The agent on azegress.json's scale set, which signs in with its
	// system-assigned identity, and the rule associated with the set.
	vmss := mainEv.str("[variables('vmssName')]")
	if got := ev.str("[variables('vmssName')]"); got != vmss {
		t.Errorf("scale set %q; azegress.json with the same namePrefix names it %q", got, vmss)
	}
	if got := depStr(depOne(t, main, "Microsoft.Compute/virtualMachineScaleSets"), "identity", "type"); got != "SystemAssigned" {
		t.Errorf("%s: the scale set's identity is %q; the Azure Monitor Agent needs a managed identity (SystemAssigned)", depARM, got)
	}
	ama := depOne(t, tmpl, "Microsoft.Compute/virtualMachineScaleSets/extensions")
	if got := ev.str(depDig(ama, "name")); got != vmss+"/AzureMonitorLinuxAgent" {
		t.Errorf("agent extension name %q, want %s/AzureMonitorLinuxAgent", got, vmss)
	}
	if depStr(ama, "properties", "publisher") != "Microsoft.Azure.Monitor" || depStr(ama, "properties", "type") != "AzureMonitorLinuxAgent" {
		t.Errorf("agent extension: want Microsoft.Azure.Monitor AzureMonitorLinuxAgent, have %v", depDig(ama, "properties"))
	}
	assoc := depOne(t, tmpl, "Microsoft.Insights/dataCollectionRuleAssociations")
	if got := ev.str(depDig(assoc, "scope")); got != "Microsoft.Compute/virtualMachineScaleSets/"+vmss {
		t.Errorf("association scope %q, want the scale set %s", got, vmss)
	}
	dcrID := "resourceId(Microsoft.Insights/dataCollectionRules/" + ev.str(depDig(dcr, "name")) + ")"
	if got := ev.str(depDig(assoc, "properties", "dataCollectionRuleId")); got != dcrID {
		t.Errorf("association rule %q, want %q", got, dcrID)
	}
	if deps := depList(assoc, "dependsOn"); len(deps) != 1 || ev.str(deps[0]) != dcrID {
		t.Errorf("association dependsOn %v, want the rule", deps)
	}
}

// depCheckDropIn checks that the drop-in's ExecStart is the unit's with
// only -log-format and -log-file added, that the unit gives serve the log
// directory, and returns the drop-in's serve flags.
func depCheckDropIn(t *testing.T) map[string]string {
	t.Helper()
	unit, drop := depUnitFile(t, depUnit), depUnitFile(t, depSentinelDropIn)
	exec := drop["ExecStart"]
	if len(exec) != 2 || exec[0] != "" {
		t.Fatalf("%s: ExecStart %q; want an empty ExecStart= (reset) then the command", depSentinelDropIn, exec)
	}
	unitExec := unit["ExecStart"][0]
	extra, ok := strings.CutPrefix(exec[1], unitExec+" ")
	if !ok {
		t.Fatalf("%s: ExecStart=%s\nis not the unit's with flags added:\n%s", depSentinelDropIn, exec[1], unitExec)
	}
	args := depCheckServeArgs(t, depSentinelDropIn+" ExecStart", strings.Fields(extra))
	if !slices.Equal(slices.Sorted(maps.Keys(args)), []string{"log-file", "log-format"}) {
		t.Errorf("%s adds %v to the unit's ExecStart; want -log-format and -log-file only", depSentinelDropIn, args)
	}
	if !slices.Contains(unit["LogsDirectory"], "azegress") || filepath.Dir(args["log-file"]) != "/var/log/azegress" {
		t.Errorf("%s: -log-file %s must be in /var/log/azegress, the unit's LogsDirectory=azegress (have %v): ProtectSystem=strict leaves nothing else writable",
			depSentinelDropIn, args["log-file"], unit["LogsDirectory"])
	}
	return args
}

// The logrotate configuration parses, rotates the drop-in's file, and
// signals serve to open a new one rather than truncating it.
func TestLogrotateConfig(t *testing.T) {
	t.Parallel()
	lr := depTool(t, "logrotate")
	src := depRead(t, depLogrotate)
	logFile := depCheckDropIn(t)["log-file"]
	if !strings.Contains(src, "\n"+logFile+" {\n") {
		t.Errorf("%s does not rotate %s", depLogrotate, logFile)
	}
	if strings.Contains(src, "copytruncate") || !strings.Contains(src, "systemctl reload azegress.service") {
		t.Errorf("%s: rotate by moving the file and reloading azegress (SIGHUP opens a new file), not copytruncate", depLogrotate)
	}
	out, err := exec.Command(lr, "-d", "-s", filepath.Join(t.TempDir(), "state"), depLogrotate).CombinedOutput()
	if err != nil || strings.Contains(strings.ToLower(string(out)), "error") {
		t.Errorf("logrotate -d %s: %v\n%s", depLogrotate, err, out)
	}
}
