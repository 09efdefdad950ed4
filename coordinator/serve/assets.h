// The page's files, compiled into the binary from coordinator/serve/assets/ at build time
// (CMakeLists.txt embeds them as raw strings): `seedgrid serve` needs nothing on disk and
// nothing from the network.
#pragma once

#include <string_view>

namespace seedgrid::serve {

struct Asset {
  const char* content_type;
  std::string_view body;
};

const Asset& IndexHtml();
const Asset& AppJs();
const Asset& StyleCss();

}  // namespace seedgrid::serve
