# Helpers shared by every module folder.
#
# streamlm_cc_library(NAME name SRCS ... DEPS ... [TORCH])
#   defines streamlm_<name> with alias streamlm::<name>; the repository root is
#   the include root ("common/config.h"). TORCH links libtorch and reuses the
#   precompiled torch header, so only files that need tensors pay for it.
# streamlm_cc_test(NAME name SRCS ... DEPS ... [TORCH] [LABELS ...])
#   a GoogleTest binary registered with CTest.

# One precompiled header for every target that uses libtorch.
add_library(streamlm_torch_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/torch_pch.cc)
target_link_libraries(streamlm_torch_pch PUBLIC torch)
target_precompile_headers(streamlm_torch_pch PRIVATE <torch/torch.h>)

function(streamlm_cc_library)
  cmake_parse_arguments(A "TORCH" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(streamlm_${A_NAME} STATIC ${A_SRCS})
  add_library(streamlm::${A_NAME} ALIAS streamlm_${A_NAME})
  target_include_directories(streamlm_${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(streamlm_${A_NAME} PUBLIC ${A_DEPS})
  if(A_TORCH)
    target_link_libraries(streamlm_${A_NAME} PUBLIC torch)
    target_precompile_headers(streamlm_${A_NAME} REUSE_FROM streamlm_torch_pch)
  endif()
endfunction()

function(streamlm_cc_test)
  cmake_parse_arguments(A "TORCH" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_include_directories(${A_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gtest GTest::gtest_main)
  if(A_TORCH)
    target_link_libraries(${A_NAME} PRIVATE torch)
    target_precompile_headers(${A_NAME} REUSE_FROM streamlm_torch_pch)
  endif()
  add_test(NAME ${A_NAME} COMMAND ${A_NAME})
  set_tests_properties(${A_NAME} PROPERTIES
    ENVIRONMENT "STREAMLM_SOURCE_DIR=${PROJECT_SOURCE_DIR};STREAMLM_BINARY=${PROJECT_BINARY_DIR}/apps/streamlm"
    LABELS "${A_LABELS}")
endfunction()
