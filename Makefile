# The entry points a person types. `make demo` runs the product locally; `make test`
# runs every test, installing what is missing first.
.PHONY: demo test unit integration e2e lint fmt build image release crds bench bench-hop soak clean

CARGO ?= cargo

demo:
	scripts/demo.sh

build:
	$(CARGO) build --workspace --all-targets

# OCI archives of chmcp-gateway and chmcp-operator under target/images (buildah, no
# Docker daemon, nothing pulled).
image:
	images/build.sh --profile release --out target/images

# Binaries, image archives, the packaged chart, the CRD and SHA256SUMS, from a clean tree.
release:
	images/release.sh

test:
	scripts/test.sh

# One rung of the test ladder each: pure and mocked, then real services, then e2e/.
unit:
	scripts/test.sh unit

integration:
	scripts/test.sh integration

e2e:
	scripts/test.sh e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

crds:
	$(CARGO) run -q -p chmcp-operator -- crd > crds/mcpmulticluster.yaml
	cp crds/mcpmulticluster.yaml charts/chmcp-operator/crds/mcpmulticluster.yaml

bench:
	bench/run.sh

# The gateway against the floor only (two rounds): the last step of `make bench`.
bench-hop:
	bench/hop.sh

soak:
	bench/soak.sh

clean:
	rm -rf .demo target
