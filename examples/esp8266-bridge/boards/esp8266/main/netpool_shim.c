/*
 * netpool-lwip's accessor shim (crates/netpool-lwip/c/shim.c), compiled here against
 * the SDK's lwIP headers and lwipopts.h: the Rust static library is built with
 * netpool-lwip's default features, which leave this to the firmware's C build.
 */
#include "../../../../../crates/netpool-lwip/c/shim.c"
