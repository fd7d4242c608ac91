// Private to serving/dashboard.cc: the table that the build generates from
// serving/ui/ (embed_assets.cmake writes dashboard_assets.cc in the build dir).
#ifndef STREAMLM_SERVING_DASHBOARD_ASSETS_H_
#define STREAMLM_SERVING_DASHBOARD_ASSETS_H_

#include <cstddef>

#include "serving/dashboard.h"

namespace streamlm::dashboard_internal {

extern const DashboardAsset kAssets[];
extern const size_t kAssetCount;

}  // namespace streamlm::dashboard_internal

#endif  // STREAMLM_SERVING_DASHBOARD_ASSETS_H_
