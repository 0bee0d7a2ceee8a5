# virt-iscsi: the two commands a new user needs are `make demo` and `make test`.
.PHONY: setup build lint test test-main test-lab test-unit bench demo clean

setup:
	./scripts/setup-deps.sh

build: setup
	npm run build

lint: setup
	npm run lint

# Every test: the main suite (real tgtd, libvirtd, QEMU/KVM and sshd that the tests
# start), then the real-kernel lab (a QEMU guest with open-iscsi and LIO, test/lab).
test: test-main
	./test/lab/run-lab.sh

test-main: setup build lint
	npm test

# Builds or reuses the lab image, boots it, runs test/lab/*.lab.ts, stops it, prints timings.
test-lab: setup
	./test/lab/run-lab.sh

bench: setup build
	npm run bench

demo: setup build
	@echo "demo: the export workflow (issue 5) brings the end-to-end demo; not available yet" >&2
	@exit 1

clean:
	rm -rf dist
