package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// vmStage runs BenchmarkVMVLANParents (integration/vm) in make test-vm's
// qemu guest, which boots Debian's own kernel: this host's kernel has no
// 802.1q. It returns the benchmark's metrics by unit.
func vmStage(repo string, timeout time.Duration) (map[string]float64, error) {
	cmd := exec.Command("make", "--no-print-directory", "-f", "integration/vm/vm.mk", "test-vm",
		"VM_TEST_PKGS=./integration/vm/",
		"VM_TEST_ARGS=-test.run ^$$ -test.bench BenchmarkVMVLANParents -test.benchtime 1x",
		fmt.Sprintf("VM_TIMEOUT=%d", int(timeout.Seconds())))
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, tailLines(string(out), 5))
	}
	return benchMetrics(string(out), "BenchmarkVMVLANParents")
}

var benchLine = regexp.MustCompile(`(?m)^(Benchmark\S+)\s+\d+\s+(.*)$`)

// benchMetrics reads "value unit" pairs from the result line of benchmark
// name in go test's output.
func benchMetrics(out, name string) (map[string]float64, error) {
	for _, m := range benchLine.FindAllStringSubmatch(out, -1) {
		if m[1] != name && !strings.HasPrefix(m[1], name+"-") {
			continue
		}
		f := strings.Fields(m[2])
		got := map[string]float64{}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %w", m[0], err)
			}
			got[f[i+1]] = v
		}
		return got, nil
	}
	return nil, fmt.Errorf("no %s result in the VM's output: %s", name, tailLines(out, 5))
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
