# Dependencies from a carried prefix (WUSH_DEPS_DIR, assembled by scripts/gpu-deps) instead of the
# Debian dev packages: the same imported targets that pkg-config and find_package(GTest) give on the
# CPU build, made from include/ and lib/ of the prefix (no pkg-config needed there). The shared
# libraries' transitive needs (libicudata, libprotobuf-lite) are found through LD_LIBRARY_PATH=
# ${WUSH_DEPS_DIR}/lib at run time (scripts/gpu-run sets it).
list(PREPEND CMAKE_PREFIX_PATH ${WUSH_DEPS_DIR})  # share/cmake/{nlohmann_json,CLI11}
set(ENV{PKG_CONFIG_PATH} "${WUSH_DEPS_DIR}/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")

# wush_deps_target(NAME lib...): INTERFACE IMPORTED target PkgConfig::NAME over the prefix's headers.
function(wush_deps_target name)
  set(libs)
  foreach(lib ${ARGN})
    find_library(WUSH_DEPS_${lib} NAMES ${lib} PATHS ${WUSH_DEPS_DIR}/lib NO_DEFAULT_PATH REQUIRED)
    list(APPEND libs ${WUSH_DEPS_${lib}})
  endforeach()
  add_library(PkgConfig::${name} INTERFACE IMPORTED GLOBAL)
  set_target_properties(PkgConfig::${name} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${WUSH_DEPS_DIR}/include
                        INTERFACE_LINK_LIBRARIES "${libs}")
endfunction()

wush_deps_target(PCRE2 pcre2-8)
wush_deps_target(ICU icuuc icudata)
if(WUSH_SPM)
  wush_deps_target(SENTENCEPIECE sentencepiece)
endif()

# GoogleTest from its sources (the Debian libgtest-dev tree, /usr/src/googletest).
set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
add_subdirectory(${WUSH_DEPS_DIR}/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
if(NOT TARGET GTest::gtest)  # googletest >= 1.11 defines these aliases itself
  add_library(GTest::gtest ALIAS gtest)
  add_library(GTest::gtest_main ALIAS gtest_main)
endif()

