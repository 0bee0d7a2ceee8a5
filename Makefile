# virt-iscsi: the two commands a new user needs are `make demo` and `make test`.
.PHONY: setup build lint test test-unit bench demo clean

setup:
	./scripts/setup-deps.sh

build: setup
	npm run build

lint: setup
	npm run lint

# Every test, against real tgtd, libvirtd, QEMU/KVM and sshd that the tests start.
test: setup build lint
	npm test

bench: setup build
	npm run bench

demo: setup build
	@echo "demo: the export workflow (issue 5) brings the end-to-end demo; not available yet" >&2
	@exit 1

clean:
	rm -rf dist
