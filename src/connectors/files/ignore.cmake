# Gitignore-style `.ferryignore` rules for the files connector. Included from this
# folder's CMakeLists.txt.
add_library(ferry_files_ignore STATIC ${CMAKE_CURRENT_LIST_DIR}/ignore.cc)
target_link_libraries(ferry_files_ignore PUBLIC absl::status absl::statusor)

ferry_test(ignore_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ignore_test.cc
           LIBS ferry_files_ignore)
