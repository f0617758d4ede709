module github.com/chorus-project/chorus

go 1.26
