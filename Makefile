# virt-iscsi: the two commands a new user needs are `make demo` and `make test`.
.PHONY: setup build lint test test-main test-lab bench bench-run bench-startup bench-scale bench-disk demo demo-ceph clean

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

# Every benchmark under bench/, each run even when one before it missed a goal (exit 1 then):
# export + unexport of one image (bench/run.ts), CLI start-up, apply/status/destroy of N
# exports (BENCH_N=1,10,50 by default; bench/scale.svg), the VM disk's speed.
bench: setup build
	@rc=0; \
	npm run bench || rc=1; \
	node --import tsx bench/startup.ts || rc=1; \
	node --import tsx bench/scale.ts || rc=1; \
	node --import tsx bench/disk-speed.ts || rc=1; \
	exit $$rc

bench-run: setup build
	npm run bench

bench-startup: setup build
	node --import tsx bench/startup.ts

bench-scale: setup build
	node --import tsx bench/scale.ts

bench-disk: setup
	node --import tsx bench/disk-speed.ts

# The main job on this machine: a small VM, a data image and an ISO exported to it over
# iSCSI with the built CLI, status, what the VM sees, unexported; the host left as found.
demo: setup build
	./scripts/demo.sh

# The same VM's disk on Ceph: a throwaway one-node cluster (scripts/ceph-dev.sh), an RBD
# image exported natively (QEMU's rbd driver), status, grown while the VM runs, unexported;
# the cluster stopped and removed.
demo-ceph: setup build
	./scripts/demo-ceph.sh

clean:
	rm -rf dist
