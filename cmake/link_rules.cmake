# Link rules between seedgrid's targets, checked at configure time (docs/ARCHITECTURE.md opens
# with the picture they enforce). A rule names a target and the regexes of what it must never
# reach; the configure fails naming the chain that reaches one, e.g.
#   seedgrid_coordinator -> seedgrid_worker -> seedgrid_runners -> seedgrid_torch -> torch
# Everything a target links is walked: the LINK_LIBRARIES of built targets and the
# INTERFACE_LINK_LIBRARIES of every target reached (imported ones included, PRIVATE links of
# static libraries as $<LINK_ONLY:...>). Other generator expressions are matched as text.

# What reaching LibTorch or MPI looks like: their CMake targets, seedgrid's LibTorch targets,
# and their libraries named by path.
set(SEEDGRID_TORCH_LINKS
  "^(torch|torch_cpu|torch_cuda|torch_library|torch_cpu_library|torch_cuda_library|c10|c10_cuda)$"
  "^seedgrid_torch$"
  "(^|/)lib(torch|torch_cpu|torch_cuda|c10|c10_cuda)\\.(so|a)")
set(SEEDGRID_MPI_LINKS "^MPI::" "(^|/)libmpi(_cxx)?\\.(so|a)")

# seedgrid_forbid_links(TARGET REASON REGEX...): FATAL_ERROR when TARGET reaches an item that
# matches one of the regexes.
function(seedgrid_forbid_links target reason)
  set(patterns ${ARGN})
  set(queue ${target})
  set(seen ${target})
  string(MAKE_C_IDENTIFIER "${target}" key)
  set(via_${key} "${target}")
  while(queue)
    list(POP_FRONT queue t)
    string(MAKE_C_IDENTIFIER "${t}" tkey)
    set(chain "${via_${tkey}}")
    if(NOT TARGET "${t}")
      continue()
    endif()
    get_target_property(aliased "${t}" ALIASED_TARGET)
    if(aliased)
      set(t "${aliased}")
    endif()
    get_target_property(type "${t}" TYPE)
    get_target_property(imported "${t}" IMPORTED)
    set(links "")
    if(NOT imported AND NOT type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(direct "${t}" LINK_LIBRARIES)
      if(direct)
        list(APPEND links ${direct})
      endif()
    endif()
    get_target_property(iface "${t}" INTERFACE_LINK_LIBRARIES)
    if(iface)
      list(APPEND links ${iface})
    endif()
    foreach(item IN LISTS links)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" item "${item}")
      if(item STREQUAL "" OR item MATCHES "-NOTFOUND$" OR item IN_LIST seen)
        continue()
      endif()
      list(APPEND seen "${item}")
      string(MAKE_C_IDENTIFIER "${item}" ikey)
      set(via_${ikey} "${chain} -> ${item}")
      foreach(p IN LISTS patterns)
        if(item MATCHES "${p}")
          message(FATAL_ERROR "link rule broken: ${reason}.\n  ${chain} -> ${item}\n"
                              "See docs/ARCHITECTURE.md (the targets and which may link which).")
        endif()
      endforeach()
      list(APPEND queue "${item}")
    endforeach()
  endwhile()
endfunction()
