# virt-iscsi: the two commands a new user needs are `make demo` and `make test`.
.PHONY: setup build lint test test-main test-lab bench demo clean

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

# The main job on this machine: a small VM, a data image and an ISO exported to it over
# iSCSI with the built CLI, status, what the VM sees, unexported; the host left as found.
demo: setup build
	./scripts/demo.sh

clean:
	rm -rf dist
