# Entry points a person types. CARGO_TARGET_DIR may point at a shared build directory.
CARGO ?= cargo

.PHONY: crds test-operator test-helm

# Regenerates the CRD from the Rust types (crds/ and the chart's copy are never hand-edited).
crds:
	$(CARGO) run -q -p chmcp-operator -- crd > crds/mcpmulticluster.yaml
	cp crds/mcpmulticluster.yaml charts/chmcp-operator/crds/mcpmulticluster.yaml

test-operator:
	$(CARGO) test -p chmcp-operator
	bash e2e/helm.sh

test-helm:
	bash e2e/helm.sh
