# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a helper.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps build test demo bench bench-pilot fuzz format clean

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure --no-tests=error -j $(JOBS) --timeout 300

demo: build
	scripts/demo.sh $(BUILD_DIR)

bench: build
	@scripts/install-deps.sh bench
	bench/peerbench.sh $(BUILD_DIR)

# pilot with 1000 simulated proxies: push latency, RSS, CPU (a Markdown table). PILOT_SCALE_ARGS
# passes flags to bench/pilot_scale, e.g. PILOT_SCALE_ARGS="--proxies 200".
bench-pilot: build
	bench/pilot-scale.sh $(BUILD_DIR) $(PILOT_SCALE_ARGS)

# libFuzzer build with clang-14 (ASan + UBSan) in its own build directory.
fuzz:
	@scripts/install-deps.sh fuzz
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DMESH_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets
	scripts/run-fuzz.sh build-fuzz

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) build-fuzz
