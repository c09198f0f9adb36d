/* version.h — the one place the release version is written. */
#ifndef VCLIP_VERSION
#define VCLIP_VERSION "0.1.0"
#endif
