# The ingress core: webhook verification and normalization (ingress_core.h), free of server
# and Kafka code. Included by ingress/webhooks/CMakeLists.txt and tests/fuzz/CMakeLists.txt;
# IMP_INGRESS_CORE_SOURCES lets the fuzz build compile the same files with its own flags.
set(IMP_INGRESS_CORE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(IMP_INGRESS_CORE_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/verify_common.c
    ${CMAKE_CURRENT_LIST_DIR}/verify_standard.c
    ${CMAKE_CURRENT_LIST_DIR}/verify_meta.c
    ${CMAKE_CURRENT_LIST_DIR}/verify_telegram.c
    ${CMAKE_CURRENT_LIST_DIR}/json_read.c
    ${CMAKE_CURRENT_LIST_DIR}/normalize_common.c
    ${CMAKE_CURRENT_LIST_DIR}/normalize_generic.c
    ${CMAKE_CURRENT_LIST_DIR}/normalize_chatflow.c
    ${CMAKE_CURRENT_LIST_DIR}/normalize_whatsapp.c
    ${CMAKE_CURRENT_LIST_DIR}/normalize_telegram.c)
if(NOT TARGET imperium_ingress_core)
    add_library(imperium_ingress_core STATIC ${IMP_INGRESS_CORE_SOURCES})
    target_include_directories(imperium_ingress_core PUBLIC ${CMAKE_CURRENT_LIST_DIR})
    target_link_libraries(imperium_ingress_core PUBLIC imperium_common)
endif()
