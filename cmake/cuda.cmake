# The CUDA kernel library (src/cuda, REFERENCE.md §7), its GPU tests and its benchmark.
# Included by CMakeLists.txt when WUSH_CUDA=ON, and by cmake/cuda_standalone for machines
# without the CPU project's dependencies (the GPU machine). Nothing here needs libtorch.
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
get_filename_component(WUSH_ROOT ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)

# sm_90a (Hopper, wgmma-capable target); Blackwell targets when this nvcc knows them.
if(NOT WUSH_CUDA_ARCHITECTURES)
  set(WUSH_CUDA_ARCHITECTURES 90a-real)
  if(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.8)
    list(APPEND WUSH_CUDA_ARCHITECTURES 100a-real 120a-real)
  endif()
endif()
message(STATUS "wush_cuda: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${WUSH_CUDA_ARCHITECTURES}")

file(GLOB WUSH_CUDA_SOURCES CONFIGURE_DEPENDS ${WUSH_ROOT}/src/cuda/*.cu ${WUSH_ROOT}/src/cuda/*.cpp)
add_library(wush_cuda STATIC ${WUSH_CUDA_SOURCES})
set_target_properties(wush_cuda PROPERTIES CUDA_ARCHITECTURES "${WUSH_CUDA_ARCHITECTURES}"
                      CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
target_include_directories(wush_cuda PUBLIC ${WUSH_ROOT}/src)
target_compile_options(wush_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xptxas=-warn-spills --expt-relaxed-constexpr>)
target_link_libraries(wush_cuda PUBLIC CUDA::cudart CUDA::cublasLt)

# GPU tests: a separate gtest binary without libtorch. Every test that needs a device skips
# (GTEST_SKIP) when none is present, so CI stays green on machines without one.
if(NOT TARGET GTest::gtest)
  find_package(GTest REQUIRED)
endif()
include(GoogleTest)
file(GLOB WUSH_CUDA_TEST_SOURCES CONFIGURE_DEPENDS ${WUSH_ROOT}/tests/cuda/*.cpp)
add_executable(wush_cuda_tests ${WUSH_CUDA_TEST_SOURCES})
target_link_libraries(wush_cuda_tests PRIVATE wush_cuda GTest::gtest GTest::gtest_main)
gtest_discover_tests(wush_cuda_tests DISCOVERY_TIMEOUT 120 PROPERTIES TIMEOUT 600)

# Benchmark (CUDA events; prints a table): bench/cuda/*.cu, one program each.
file(GLOB WUSH_CUDA_BENCH_SOURCES CONFIGURE_DEPENDS ${WUSH_ROOT}/bench/cuda/*.cu)
foreach(src ${WUSH_CUDA_BENCH_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  set_target_properties(${name} PROPERTIES CUDA_ARCHITECTURES "${WUSH_CUDA_ARCHITECTURES}" CUDA_STANDARD 17)
  target_link_libraries(${name} PRIVATE wush_cuda)
endforeach()
