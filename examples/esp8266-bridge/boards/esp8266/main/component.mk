#
# The bridge's C side (app_main, WiFi, board services, netpool-lwip's shim), and the
# Rust static library (../rust, built by ../build.sh; path in BRIDGE_RUST_LIB).
#
BRIDGE_RUST_LIB ?= $(abspath $(COMPONENT_PATH)/../../../../../target/esp8266-bridge-sdk/xtensa-esp8266-none-elf/release/libbridge_esp8266.a)

COMPONENT_ADD_LDFLAGS := -lmain $(BRIDGE_RUST_LIB)
COMPONENT_ADD_LINKER_DEPS := $(BRIDGE_RUST_LIB)

# netpool_shim.c includes netpool-lwip's c/shim.c from the repository.
netpool_shim.o: CFLAGS += -Wno-unused-function

