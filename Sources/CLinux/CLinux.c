// The module is header-only (CLinux.h); SwiftPM needs one source file.
