# vclip — build, test and sanitizer/fuzz variants.
#   make              bin/vclipc, bin/vclip-run
#   make test         unit tests + the Python checks against ONNX Runtime (README's test command)
#   make asan         the same binaries with ASan+UBSan in build-asan/bin
#   make fuzz         the libFuzzer targets (clang): ONNX importer, tokenizer, safetensors, npy, text lists
CC       ?= gcc
BUILD    ?= build
BIN      ?= bin
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
OPT      ?= -O2
DATA_DIR ?= $(CURDIR)
# -fPIC and hidden symbols: the same objects make the static archive and
# libvclip.so, which exports only include/vclip.h (api/vclip.c)
CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Wpointer-arith -fPIC -fvisibility=hidden -D_GNU_SOURCE -I$(BUILD)/gen -Ionnx -MMD -MP -DVCLIP_DATA_DIR='"$(DATA_DIR)"'
LDLIBS   += -lpthread -lprotobuf-c -lopenblas -lpcre2-8 -lutf8proc -ljansson -lz -lavformat -lavcodec -lswscale -lavutil -lpng -ljpeg -lcurl -ldl -lm
# The tests' Python: the venv tools/install-deps.sh fills (override with PYTHON=...).
PYTHON   ?= $(CURDIR)/.venv/bin/python

GEN      := $(BUILD)/gen/onnx.pb-c.c
# The MPI communicator is a plugin built with mpicc (Open MPI), loaded only
# by runs that a launcher started as several processes (runtime/comm/comm.h).
MPI_PLUGIN_SRC := runtime/comm/comm_mpi.c
MPICC    ?= mpicc
LIB_SRC  := $(filter-out $(MPI_PLUGIN_SRC),$(wildcard runtime/caption/*.c ir/*.c onnx/*.c passes/*.c runtime/*.c runtime/cpu/*.c models/*.c models/tokenizer/*.c runtime/data/*.c runtime/eval/*.c runtime/train/*.c runtime/comm/*.c runtime/cuda/*.c runtime/demo/*.c codegen/*.c))
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/onnx.pb-c.o
TOOLS    := $(BIN)/vclipc $(BIN)/vclip-run $(BIN)/vclip-comm-mpi.so $(BUILD)/libvclip.so
# Every tests/unit/test_*.c is a unit test program.
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
UNIT     := $(addprefix $(BUILD)/tests/,$(UNIT_NAMES))

all: $(TOOLS)

$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(BUILD)/gen $(notdir $(ONNX_PROTO))

$(BUILD)/obj/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Wextra,$(CFLAGS)) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libvclip.a: $(LIB_OBJ)
	rm -f $@ && $(AR) rcs $@ $^  # afresh: an archive keeps members whose source is gone

# The C library: include/vclip.h's functions (api/vclip.c) over the whole archive, nothing else exported
VCLIP_SOVERSION := 1
$(BUILD)/libvclip.so: $(BUILD)/obj/api/vclip.o $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libvclip.so.$(VCLIP_SOVERSION) $^ $(LDLIBS) -o $@

$(BIN)/vclip-comm-mpi.so: $(MPI_PLUGIN_SRC) runtime/comm/comm_ops.h runtime/comm/comm.h
	@mkdir -p $(BIN)
	OMPI_CC=$(CC) $(MPICC) $(filter-out -MMD -MP,$(CFLAGS)) -fPIC -shared -fvisibility=hidden $< -o $@

$(BIN)/vclipc: $(BUILD)/obj/tools/vclipc.o $(BUILD)/obj/tools/cli.o $(BUILD)/libvclip.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# vclip-run: every tools/*.c but vclipc's main
RUN_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out tools/vclipc.c,$(wildcard tools/*.c)))
$(BIN)/vclip-run: $(RUN_OBJ) $(BUILD)/libvclip.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libvclip.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# test_cuda checks our copies of CUDA's constants against the toolkit's headers where they are installed
CUDA_INCLUDE ?= $(wildcard /usr/local/cuda/include)
$(BUILD)/obj/tests/unit/test_cuda.o: CFLAGS += $(if $(CUDA_INCLUDE),-isystem $(CUDA_INCLUDE) -DVCLIP_HAVE_CUDA_HEADERS)

unit: $(UNIT)
	@for t in $(UNIT); do echo "== $$t"; $$t || exit 1; done

# bench/bench_gpu.py's C driver
$(BUILD)/bench/gpu_infer: $(BUILD)/obj/bench/gpu_infer.o $(BUILD)/libvclip.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# bench/bench_train.py's C driver
$(BUILD)/bench/train_step: $(BUILD)/obj/bench/train_step.o $(BUILD)/libvclip.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# bench/bench_gemm.py's C driver
$(BUILD)/bench/gemm: $(BUILD)/obj/bench/gemm.o $(BUILD)/libvclip.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# The sanitizer build: separate tree, same sources.
asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	        all $(addprefix build-asan/tests/,$(UNIT_NAMES))

FUZZ_CC ?= clang
# Every tests/fuzz/fuzz_*.c is a libFuzzer target (docs/fuzzing.md).
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,build-fuzz/bin/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS := -std=c11 -O1 -g -D_GNU_SOURCE -Ibuild-fuzz/gen -Ionnx -DVCLIP_DATA_DIR='"$(CURDIR)"' -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz: $(BUILD)/gen/onnx.pb-c.c
	$(MAKE) BUILD=build-fuzz BIN=build-fuzz/bin CC=$(FUZZ_CC) OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" build-fuzz/libvclip.a
	$(MAKE) $(FUZZ_BINS)

build-fuzz/bin/%: tests/fuzz/%.c tests/fuzz/fuzz_file.h build-fuzz/libvclip.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< build-fuzz/libvclip.a $(LDLIBS) -o $@

# The bundled default: the demo world (docs/training.md), results in demo-out/.
demo: all
	$(BIN)/vclip-run demo --out demo-out

# NVRTC from the venv's nvidia-cuda-nvrtc wheel where no CUDA toolkit is installed (tools/install-deps.sh);
# a toolkit's wins even when torch brought the wheel along (under ASan the wheel's NVRTC cannot open its builtins)
SYSTEM_NVRTC := $(shell ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so' && echo yes)
VENV_NVRTC := $(if $(SYSTEM_NVRTC),,$(firstword $(wildcard $(CURDIR)/.venv/lib/python*/site-packages/nvidia/cu*/lib/libnvrtc.so*)))
test: export VCLIP_NVRTC := $(or $(VCLIP_NVRTC),$(VENV_NVRTC))
test: all $(UNIT) asan fuzz
	@test -x "$(PYTHON)" || { echo "make test: no $(PYTHON): run tools/install-deps.sh first (it makes the tests' venv)"; exit 1; }
	$(PYTHON) -m pip install -q --no-deps --no-build-isolation --force-reinstall ./python  # the Python package, over this build's libvclip.so
	@for t in $(UNIT) $(subst $(BUILD)/,build-asan/,$(UNIT)); do echo "== $$t"; $$t || exit 1; done
	$(PYTHON) -m pytest -q -rs tests  # -rs: every skip says why in the summary

clean:
	rm -rf build build-asan build-fuzz bin

.PHONY: all unit asan fuzz demo test clean install
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(RUN_OBJ:.o=.d) $(BUILD)/obj/tools/vclipc.d $(wildcard $(BUILD)/obj/tests/unit/*.d) $(wildcard $(BUILD)/obj/bench/*.d)

# make install PREFIX=DIR: the tools, the MPI plugin, the C library (shared and
# static), its header, pkg-config file and data (the BPE vocabulary)
PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/.*VCLIP_VERSION "\(.*\)".*/\1/p' tools/version.h)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	        $(DESTDIR)$(PREFIX)/share/vclip/models/tokenizer
	install -m 755 $(BIN)/vclipc $(BIN)/vclip-run $(BIN)/vclip-comm-mpi.so $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(BUILD)/libvclip.so $(DESTDIR)$(PREFIX)/lib/libvclip.so.$(VCLIP_SOVERSION)
	ln -sf libvclip.so.$(VCLIP_SOVERSION) $(DESTDIR)$(PREFIX)/lib/libvclip.so
	install -m 644 $(BUILD)/libvclip.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/vclip.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 models/tokenizer/bpe_simple_vocab_16e6.txt.gz $(DESTDIR)$(PREFIX)/share/vclip/models/tokenizer/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS@|$(LDLIBS)|' tools/vclip.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/vclip.pc

# A make variable's value, for tests that build a variant of one file (make -s print-CFLAGS)
print-%:
	@echo '$($*)'
