# The two set-up commands of README.md: `make demo` (the main job on the
# embedded demo image) and `make test` (everything CI runs).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin

GO      ?= go
BUILD   := build
DEMO    := $(BUILD)/demo-oci
CACHE   := $(BUILD)/cache
OCIFS   := ./ocifs --cache-dir $(CACHE)

.PHONY: all build test demo clean

all: build

build:
	$(GO) build -o ocifs ./cmd/ocifs

# Installs missing prerequisites (as root), starts a loopback registry,
# runs vet, a gofmt check and go test -race in strict mode.
test:
	bash .ci/test.sh

demo: build
	rm -rf $(DEMO) $(BUILD)/demo.ext4
	$(GO) run ./internal/demo/mkdemo $(DEMO)
	$(OCIFS) pull oci:$(DEMO):demo
	$(OCIFS) inspect oci:$(DEMO):demo
	$(OCIFS) inspect oci:$(DEMO):demo /usr/bin/ping
	$(OCIFS) build --verbose oci:$(DEMO):demo $(BUILD)/demo.ext4
	# The ext4 carries what an extraction as an ordinary user would lose:
	debugfs -R 'stat /usr/bin/ping' $(BUILD)/demo.ext4 2>/dev/null | head -3
	debugfs -R 'ea_list /usr/bin/ping' $(BUILD)/demo.ext4 2>/dev/null
	debugfs -R 'ls -l /usr/bin' $(BUILD)/demo.ext4 2>/dev/null
	debugfs -R 'ls -l /dev' $(BUILD)/demo.ext4 2>/dev/null
	e2fsck -fn $(BUILD)/demo.ext4

clean:
	rm -rf $(BUILD) ocifs
