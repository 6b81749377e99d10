// Precompiled header for every wush target: the heavy libtorch/ATen headers.
#pragma once
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include <map>
#include <memory>
#include <functional>
