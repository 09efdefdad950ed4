// SHA-256 (FIPS 180-4), used for shard ids and spec hashes. Stable across machines and builds.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace seedgrid {

class Sha256 {
 public:
  Sha256();
  Sha256& Update(std::string_view bytes);
  std::array<uint8_t, 32> Digest();  // finalises; the object is spent afterwards
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string Sha256Hex(std::string_view bytes);

}  // namespace seedgrid
