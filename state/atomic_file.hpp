// Durable, race-free file writes for key material leaving the database
// (export-vault-keys, the Vault init fallback).
//
// writeFileAtomic(path, text): a temporary file with a random name beside
// `path`, created O_CREAT|O_EXCL|O_NOFOLLOW with mode 0600 (a file or
// symlink planted there makes the create fail, never redirects it), written,
// fsynced, renamed over `path` (a symlink at `path` is replaced, not
// followed), then the directory is fsynced so the rename survives a crash.
// On failure the temporary file is removed and `path` is untouched.
// Errors: io, naming the path. Nothing here logs `text`.
#pragma once

#include <filesystem>
#include <string_view>

#include "common/result.hpp"

namespace foundationd::state {

Status writeFileAtomic(const std::filesystem::path& path, std::string_view text);

// fsync of a directory (after a rename or create in it).
Status fsyncDirectory(const std::filesystem::path& dir);

}  // namespace foundationd::state
